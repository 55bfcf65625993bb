"""Use cases that span domains, one function each: what the routers and the worker's
executor call, above conversations, files and the agent."""

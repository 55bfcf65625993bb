"""Use cases that span domains: above conversations, runs and the agent, below the routers."""

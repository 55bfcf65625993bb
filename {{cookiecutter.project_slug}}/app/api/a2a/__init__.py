"""A2A 1.0 (the Agent2Agent protocol, a2a-sdk's types and JSON-RPC dispatcher): the public
agent card, and tasks that are runs. A task's id is its run's id, its contextId the run's
conversation, its events the run's events; the answer is its artifact."""

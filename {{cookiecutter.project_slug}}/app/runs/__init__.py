"""Background runs: a turn of the agent executed by a worker, followed through its events."""

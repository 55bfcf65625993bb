"""Use cases that span domains, one function each: what the routers and the worker call
(execution.py: how a worker claims, leases and runs a background run), above every domain."""

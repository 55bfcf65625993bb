"""The AG-UI way in: the router, the run's input (run_input.py) and the turn's events as
AG-UI events (events.py)."""

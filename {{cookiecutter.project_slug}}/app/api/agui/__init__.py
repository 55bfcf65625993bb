"""The AG-UI way in: the router (with the run's input) and the turn's events as AG-UI
events (events.py)."""

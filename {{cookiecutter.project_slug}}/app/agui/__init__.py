"""The AG-UI protocol: what a run asks of a conversation, and a turn's events as AG-UI's."""

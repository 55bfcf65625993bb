"""Maintenance scripts of the template (run with `uv run python -m scripts.<name>`)."""

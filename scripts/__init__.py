"""Maintenance scripts of the template (run with `uv run --locked python -m scripts.<name>`); the
benchmarks are in benchmarks/."""

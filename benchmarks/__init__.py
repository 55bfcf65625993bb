"""The template's benchmarks (`uv run --locked python -m benchmarks.<name>`; README says which)."""

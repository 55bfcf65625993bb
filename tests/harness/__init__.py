"""Test harness: real PostgreSQL and Redis servers and what the machine offers the tests."""

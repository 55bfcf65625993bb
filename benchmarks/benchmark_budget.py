"""Measure what a key's budget costs its turns, and its usage report its reads, as its ledger
grows: an empty ledger against 1,000,000 model calls this month.

    uv run --locked python -m benchmarks.benchmark_budget    # needs wrk, taskset (util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis, and the api as its
image starts it (`python -m app`, pinned to CPU 0; wrk on CPU 1), with a budget on every key
(tokens per day and per month, out of reach: each turn checks it and holds on it, as a budgeted
turn does, without ever being refused). It loads a message turn on the echo model, and
`GET /v1/usage` (30 days, with the budget's bounds), with the empty ledger; then stores CALLS
ledger rows of the benchmark's key, spread over this month up to now (a busy service whose one
key serves all its users), runs VACUUM ANALYZE, and loads both again (the turn on a new
conversation). Prints a Markdown table for docs/performance.md with p50 and p99 latency before
and after the fill and their ratio.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.benchmark_api import (
    Result,
    load_each,
    migrated_env,
    options,
    pinned_api,
    rendered_with_servers,
)
from tests.harness.postgres_server import PostgresServer

CALLS = 1_000_000
# Rows per INSERT statement: each stays well inside psql's timeout in the harness.
CHUNK = 100_000
OUT_OF_REACH = 10**15
# How long wrk waits for an answer: a slow one is measured, not dropped as an error.
WAIT = 60
BUDGET = {"default": {"tokens_per_day": OUT_OF_REACH, "tokens_per_month": OUT_OF_REACH}}


def main() -> None:
    parsed = options(__doc__ or "", connections=4)
    with rendered_with_servers() as (work, project, postgres, redis):
        key, env = migrated_env(
            project, work, postgres.url, redis.url, {"spend": {"budgets": BUDGET}}
        )
        with pinned_api(project, env, work) as (_, base):
            auth = {"Authorization": f"Bearer {key}"}
            empty = measure(base, auth, work, parsed.seconds, parsed.connections)
            started = time.monotonic()
            fill(postgres)
            filled_in = time.monotonic() - started
            full = measure(base, auth, work, parsed.seconds, parsed.connections)
            count = postgres.query("SELECT count(*) FROM model_calls")

    print(
        f"## {datetime.now(UTC):%Y-%m-%d}, {parsed.seconds} s per run, "
        f"{parsed.connections} connections; {count} model calls stored in {filled_in:.0f} s\n"
    )
    print("| endpoint | ledger | p50 ms | p99 ms | requests/s |")
    print("|---|---|---|---|---|")
    for endpoint in empty:
        for name, result in (("empty", empty[endpoint]), (f"{CALLS:,} calls", full[endpoint])):
            latency = f"{result.p50_ms:.1f} | {result.p99_ms:.1f}"
            print(f"| {endpoint} | {name} | {latency} | {result.requests_per_second:.0f} |")
        ratio = full[endpoint].p99_ms / empty[endpoint].p99_ms
        print(f"| {endpoint} | ratio, p99 | | {ratio:.2f} | |")


def measure(
    base: str, auth: dict[str, str], work: Path, seconds: int, connections: int
) -> dict[str, Result]:
    """Load a message turn on a new conversation, and the usage report (a warm-up, then the
    measured run, each)."""
    with httpx.Client(base_url=base, headers=auth) as client:
        created = client.post("/v1/conversations", json={"title": "measured"})
        created.raise_for_status()
    endpoints = {
        "budgeted message turn (echo)": (
            "POST",
            f"/v1/conversations/{created.json()['id']}/messages",
            '{"content": "hello there"}',
        ),
        "`GET /v1/usage`": ("GET", "/v1/usage", None),
    }
    return load_each(base, endpoints, auth, work, seconds, connections, WAIT)


def fill(postgres: PostgresServer) -> None:
    """Store CALLS ledger rows of the benchmark's key, evenly from the month's start to now."""
    ours = postgres.query("SELECT owner FROM conversations LIMIT 1")
    for start in range(0, CALLS, CHUNK):
        postgres.query(
            f"""
            INSERT INTO model_calls (owner, provider, model, prompt_tokens, completion_tokens,
                                     cache_read_tokens, cache_write_tokens, cost_usd, created_at)
            SELECT '{ours}', 'echo', 'echo', 50, 10, 0, 0, NULL,
                   date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                   + (n::float / {CALLS}) * (now() - (date_trunc('month', now() AT TIME ZONE
                   'UTC') AT TIME ZONE 'UTC'))
            FROM generate_series({start}, {start + CHUNK - 1}) AS n
            """
        )
    postgres.query("VACUUM ANALYZE")


if __name__ == "__main__":
    main()

"""Measure how the api's latency grows with data: an empty database against 1,000,000 conversations.

    uv run --locked python -m benchmarks.benchmark_growth # needs wrk, taskset (util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis, and the api exactly
as its image starts it (`python -m app`, pinned to CPU 0; wrk on CPU 1). It loads three
endpoints on the empty database: the first page of the caller's conversations, one
conversation, and a message turn with the echo provider. Then it stores 1,000,000
conversations with two messages each, all of them the benchmark key's own (the worst case for
its listing: a service whose one key serves all its users), runs VACUUM ANALYZE, and loads the
same endpoints again, each turn on a new conversation of the same size. Then it loads reading
a conversation and a turn on one that holds LONG_MESSAGES messages (an agent's thread of
months). Prints a Markdown table for docs/performance.md with p99 latency before and after and
their ratio (target: at most 2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
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

CONVERSATIONS = 1_000_000
LONG_MESSAGES = 100_000
# How long wrk waits for an answer: a slow one is measured, not dropped as an error.
WAIT = 60
# Rows per INSERT statement: each stays well inside psql's timeout in the harness.
CHUNK = 50_000
TARGET = 2.0


def main() -> None:
    parsed = options(__doc__ or "", connections=4)
    with rendered_with_servers() as (work, project, postgres, redis):
        key, env = migrated_env(project, work, postgres.url, redis.url)
        with pinned_api(project, env, work) as (_, base):
            auth = {"Authorization": f"Bearer {key}"}
            empty = measure(base, auth, work, parsed)
            started = time.monotonic()
            fill(postgres)
            filled_in = time.monotonic() - started
            full = measure(base, auth, work, parsed)
            count = postgres.query("SELECT count(*) FROM conversations")
            one_by_one = alone(base, auth, postgres)
            long = measure(base, auth, work, parsed, grow=lambda id_: lengthen(postgres, id_))

    print(
        f"## {datetime.now(UTC):%Y-%m-%d}, {parsed.seconds} s per run, "
        f"{parsed.connections} connections; {count} conversations stored in {filled_in:.0f} s\n"
    )
    print("| endpoint | empty p50 / p99 ms | 1M p50 / p99 ms | p99 ratio | target |")
    print("|---|---|---|---|---|")
    for name, before in empty.items():
        after = full[name]
        print(
            f"| {name} | {before.p50_ms:.1f} / {before.p99_ms:.1f} | "
            f"{after.p50_ms:.1f} / {after.p99_ms:.1f} | {after.p99_ms / before.p99_ms:.2f} "
            f"| <= {TARGET} |"
        )
    for name in list(empty)[1:]:
        before, after = empty[name], long[name]
        print(
            f"| {name}, {LONG_MESSAGES:,} messages | {before.p50_ms:.1f} / {before.p99_ms:.1f} | "
            f"{after.p50_ms:.1f} / {after.p99_ms:.1f} | {after.p99_ms / before.p99_ms:.2f} "
            f"| <= {TARGET} |"
        )
    print()
    for name, seconds in one_by_one.items():
        each = ", ".join(f"{value * 1000:.0f}" for value in seconds)
        print(f"One {name} of a {LONG_MESSAGES:,}-message conversation, alone: {each} ms")


def alone(
    base: str, auth: dict[str, str], postgres: PostgresServer, times: int = 3
) -> dict[str, list[float]]:
    """Seconds each of a read and a turn of a new LONG_MESSAGES conversation takes, one
    request at a time on an otherwise idle api (wrk's percentiles hold only the answers that
    came within its run, and a slow one leaves the api busy into the next run)."""
    with httpx.Client(base_url=base, headers=auth, timeout=600) as client:
        created = client.post("/v1/conversations", json={"title": "alone"})
        created.raise_for_status()
        lengthen(postgres, created.json()["id"])
        path = f"/v1/conversations/{created.json()['id']}"
        requests = {
            "read": client.build_request("GET", path),
            "turn": client.build_request("POST", f"{path}/messages", json={"content": "hi"}),
        }
        timed: dict[str, list[float]] = {name: [] for name in requests}
        for _ in range(times):
            for name, request in requests.items():
                started = time.perf_counter()
                client.send(request).raise_for_status()
                timed[name].append(time.perf_counter() - started)
    return timed


def measure(
    base: str,
    auth: dict[str, str],
    work: Path,
    options: argparse.Namespace,
    grow: Callable[[str], None] | None = None,
) -> dict[str, Result]:
    """Load each endpoint (a warm-up, then the measured run) on a new conversation, which
    grow lengthens first if given."""
    with httpx.Client(base_url=base, headers=auth) as client:
        created = client.post("/v1/conversations", json={"title": "measured"})
        created.raise_for_status()
        conversation = created.json()["id"]
        # Two messages, as every stored conversation has.
        client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hello"}
        ).raise_for_status()
    if grow is not None:
        grow(conversation)
    endpoints = {
        "`GET /v1/conversations` (first page)": ("GET", "/v1/conversations", None),
        "`GET /v1/conversations/{id}`": ("GET", f"/v1/conversations/{conversation}", None),
        "message turn (echo)": (
            "POST",
            f"/v1/conversations/{conversation}/messages",
            '{"content": "hello there"}',
        ),
    }
    return load_each(base, endpoints, auth, work, options.seconds, options.connections, WAIT)


def fill(postgres: PostgresServer) -> None:
    """Store CONVERSATIONS conversations of the benchmark's key, two messages each."""
    ours = postgres.query("SELECT owner FROM conversations LIMIT 1")
    for start in range(0, CONVERSATIONS, CHUNK):
        postgres.query(
            f"""
            WITH made AS (
                INSERT INTO conversations (id, owner, title, created_at)
                SELECT gen_random_uuid(),
                       '{ours}',
                       'stored ' || n,
                       now() - n * interval '1 second'
                FROM generate_series({start}, {start + CHUNK - 1}) AS n
                RETURNING id, created_at
            )
            INSERT INTO messages (id, conversation_id, role, content, file_ids, tool_calls,
                                  created_at)
            SELECT gen_random_uuid(), made.id, role, content, '{{}}', '[]',
                   made.created_at + step * interval '1 millisecond'
            FROM made,
                 (VALUES (0, 'user', 'hello'), (1, 'assistant', 'echo: hello'))
                     AS turn (step, role, content)
            """
        )
    postgres.query("VACUUM ANALYZE")


def lengthen(postgres: PostgresServer, conversation: str) -> None:
    """Put LONG_MESSAGES earlier messages (a user's and the echo's, in turns) into it."""
    for start in range(0, LONG_MESSAGES, CHUNK):
        postgres.query(
            f"""
            INSERT INTO messages (id, conversation_id, role, content, file_ids, tool_calls,
                                  created_at)
            SELECT gen_random_uuid(), '{conversation}',
                   CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END,
                   CASE WHEN n % 2 = 0 THEN 'hello ' || n ELSE 'echo: hello ' || (n - 1) END,
                   '{{}}', '[]', now() - interval '30 days' + n * interval '10 milliseconds'
            FROM generate_series({start}, {start + CHUNK - 1}) AS n
            """
        )
    postgres.query("VACUUM ANALYZE messages")


if __name__ == "__main__":
    main()

"""Measure the generated worker's throughput against a minimal taskiq worker writing the same rows.

    uv run --locked python -m benchmarks.benchmark_worker      # needs taskset (Debian: util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis from the machine's
binaries (moved to CPU 1, with this script) and migrates. The model is the offline echo
provider and each run's message is two `/tool current_time` lines: a run makes three model
calls and two tool calls, and its worker writes five messages and six events.

Throughput. The runs are stored directly, not through the api (creating thousands per side
would take longer than running them): one INSERT of N conversations of a batch's owner, each
with the user's message and a queued run (the rows POST /v1/conversations/{id}/runs stores),
then each run's id sent with the generated api's own `enqueue`. One worker pinned to CPU 0
then drains the queue: ours exactly as its image starts it (`python -m app.worker`, the
generated config.yaml, its worker.concurrency), or the baseline, a minimal taskiq worker on
the same queue with the same concurrency writing the same rows with asyncpg, one transaction
per step (benchmarks/benchmark_worker_baseline.py; its docstring says what it leaves out). Once
the worker has taken its first message, --skip seconds of start-up pass; the batch's
succeeded runs are counted in the database at the start and the end of a --seconds window
(the queue must still hold runs at its end), with the worker's CPU time. The worker then
drains the rest and is stopped, and every run of the batch must have ended succeeded with
exactly the expected rows (3 assistant and 2 tool messages with the tokens the run sums,
the events running, tool_call, tool_result, tool_call, tool_result, done) and the same
tokens on both sides. A warm-up batch of each side sizes the measured ones; then --rounds of
ours and the baseline back to back, the ratio taken within each round (the machine's speed
drifts), and medians over the rounds.

Latency. Our api (CPU 1) and worker (CPU 0) run together; runs are posted through the api
(`POST /v1/conversations/{id}/runs`, conversations created beforehand) at half our median
rate (or --latency-rate), evenly spaced whatever the answers (open loop), for
--latency-seconds. The api shares CPU 1 with PostgreSQL, Redis and this script: past some
rate that core, not the worker, sets the latency. A run's latency
is from the moment its POST was sent (this script's clock) to its finished_at (PostgreSQL's
clock_timestamp(): one machine, one clock).

With --budgets every key has a budget no run reaches, so each model call also takes and
settles a hold on it (spend.budgets): what accounting costs a worker is the difference.

Prints a Markdown table for docs/performance.md. Speed is measured here, never asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from redis import Redis

from benchmarks.benchmark_api import (
    BASELINE_DIR,
    LOAD_CPU,
    UNREACHED_LIMIT,
    migrated_env,
    our_api,
    pin,
    pinned,
    rendered_with_servers,
)
from benchmarks.benchmark_worker_batches import CONTENT, Bench, Window, resident
from tests.harness.api import config_file
from tests.harness.environment import free_port
from tests.harness.postgres_server import PostgresServer
from tests.project import Project

TARGET = 0.6
SIDES = ("ours", "baseline")


@dataclass(frozen=True)
class Latency:
    rate: float  # runs posted per second
    p50_ms: float
    p99_ms: float
    idle_mb: float
    loaded_mb: float


def latency(bench: Bench, key: str, rate: float) -> Latency:
    """Post runs through our api at `rate` for --latency-seconds to a running worker; their
    latencies from the POST's sending to the run's finished_at."""
    api, port = our_api(bench.project, bench.env, bench.work / "api.log")
    api.start()
    pinned(api, LOAD_CPU)
    worker = bench.worker("ours")
    worker.start()
    pinned(worker)
    base = f"http://127.0.0.1:{port}"
    count = max(2, round(rate * bench.options.latency_seconds))
    try:
        api.wait_for_http(f"{base}/health")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            conversations = [conversation(client) for _ in range(count + 1)]
            # One run first, waited for: the worker is up and warm before the measured ones.
            warm = post_run(client, conversations.pop())
            bench.wait(worker, lambda: run_status(client, warm) == "succeeded", "failed a run")
        idle = resident(worker)
        sent = asyncio.run(open_loop(base, key, conversations, rate))
        owner = bench.query(f"SELECT owner FROM runs WHERE id = '{warm}'")
        bench.drained(worker, owner)
        loaded = resident(worker)
    finally:
        worker.stop()
        api.stop()
    bench.check(owner, count + 1)
    finished = dict(
        line.split("|")
        for line in bench.query(
            f"SELECT id, extract(epoch FROM finished_at) FROM runs WHERE owner = '{owner}'"
        ).splitlines()
    )
    seconds = sorted(float(finished[run]) - at for run, at in sent)
    p99 = statistics.quantiles(seconds, n=100)[98]
    posted = (len(sent) - 1) / (max(at for _, at in sent) - min(at for _, at in sent))
    return Latency(posted, statistics.median(seconds) * 1000, p99 * 1000, idle, loaded)


def conversation(client: httpx.Client) -> str:
    response = client.post("/v1/conversations", json={})
    response.raise_for_status()
    return str(response.json()["id"])


def post_run(client: httpx.Client, conversation: str) -> str:
    response = client.post(f"/v1/conversations/{conversation}/runs", json={"content": CONTENT})
    if response.status_code != 202:
        raise SystemExit(f"POST runs answered {response.status_code}: {response.text}")
    return str(response.json()["id"])


def run_status(client: httpx.Client, run: str) -> str:
    return str(client.get(f"/v1/runs/{run}").json()["status"])


async def open_loop(
    base: str, key: str, conversations: list[str], rate: float
) -> list[tuple[str, float]]:
    """Post one run on each conversation, 1/rate seconds apart whatever the answers; return
    each run's id and the wall-clock time its POST was sent."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=len(conversations))
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        start = time.monotonic() + 0.5

        async def post(index: int, conversation: str) -> tuple[str, float]:
            await asyncio.sleep(start + index / rate - time.monotonic())
            sent = time.time()
            path = f"/v1/conversations/{conversation}/runs"
            response = await client.post(path, json={"content": CONTENT})
            if response.status_code != 202:
                raise SystemExit(f"POST runs answered {response.status_code}: {response.text}")
            return str(response.json()["id"]), sent

        return list(await asyncio.gather(*(post(i, c) for i, c in enumerate(conversations))))


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured window per side")
    parser.add_argument("--skip", type=float, default=2, help="start-up left out of it")
    parser.add_argument("--rounds", type=int, default=3, help="alternating windows of each side")
    parser.add_argument("--runs", type=int, help="runs queued per window (default: sized)")
    parser.add_argument("--latency-seconds", type=float, default=20, help="of posting runs")
    parser.add_argument(
        "--latency-rate", type=float, help="runs posted per second (default: half ours)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="worker.concurrency of both workers (default: config's)"
    )
    parser.add_argument(
        "--budgets",
        action="store_true",
        help="give every key a budget (never reached): each model call then holds on it",
    )
    parsed = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset not found (Debian: apt-get install util-linux)")
    return parsed


def servers_on_load_cpu(postgres: PostgresServer, redis: Redis) -> None:
    """PostgreSQL (its postmaster, whose later backends inherit it, and its children now)
    and Redis on CPU 1, off the measured worker's CPU."""
    postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    for pid in [postmaster, *map(int, children), int(redis.info("server")["process_id"])]:
        pin(pid, LOAD_CPU)


def main() -> None:
    parsed = options()
    # The measured worker gets CPU 0 to itself; this script and the servers share CPU 1.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    with rendered_with_servers() as (work, project, postgres, redis_server):
        redis = Redis.from_url(redis_server.url)
        servers_on_load_cpu(postgres, redis)
        bench, key, config = prepared(project, work, postgres, redis, redis_server.url, parsed)
        rates = {side: bench.warm_up(side) for side in SIDES}
        rounds = []
        for _ in range(parsed.rounds):
            windows = []
            for side in SIDES:
                windows.append(bench.measure(side, rates[side]))
                rates[side] = max(rates[side], windows[-1].rate)
            rounds.append((windows[0], windows[1]))
        ours_rate = statistics.median(ours.rate for ours, _ in rounds)
        timed = latency(bench, key, parsed.latency_rate or ours_rate / 2)
    concurrency = config["worker"]["concurrency"]
    print(
        f"## {datetime.now(UTC):%Y-%m-%d}, {parsed.rounds} rounds of {parsed.seconds:g} s per "
        f"side after {parsed.skip:g} s of start-up, worker.concurrency {concurrency}"
        f"{', every key with a budget' if parsed.budgets else ''} "
        "(medians; the ratio's range in brackets)\n"
    )
    print("| measure | ours | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in table(rounds, timed):
        print(row)


def prepared(
    project: Project,
    work: Path,
    postgres: PostgresServer,
    redis: Redis,
    redis_url: str,
    parsed: argparse.Namespace,
) -> tuple[Bench, str, dict[str, Any]]:
    """A migrated database; both workers' environments on it; the api key; the config."""
    key, env = migrated_env(project, work, postgres.url, redis_url)
    # The worker's metrics on a free loopback port: another project's worker may hold 9101.
    metrics = {"worker_host": "127.0.0.1", "worker_port": free_port()}
    overrides: dict[str, dict[str, Any]] = {**UNREACHED_LIMIT, "metrics": metrics}
    if parsed.concurrency:
        overrides["worker"] = {"concurrency": parsed.concurrency}
    if parsed.budgets:
        # Bounds no run reaches: every call still takes and settles its hold.
        never = {"tokens_per_day": 10**15, "usd_per_month": 10**9}
        overrides["spend"] = {"budgets": {"default": never}}
    path = config_file(project, work / "worker.yaml", overrides)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    # The worker proves it is alive with a file in TMPDIR: one of its own.
    (work / "tmp").mkdir()
    env = {**env, "CONFIG_FILE": str(path), "TMPDIR": str(work / "tmp")}
    baseline_env = {
        **env,
        "PYTHONPATH": str(BASELINE_DIR),
        "BASELINE_DATABASE_URL": postgres.url,
        "BASELINE_REDIS_URL": redis_url,
        "BASELINE_CONCURRENCY": str(config["worker"]["concurrency"]),
        "BASELINE_SYSTEM_PROMPT": config["llm"]["system_prompt"] or "",
    }
    return Bench(project, work, postgres, redis, env, baseline_env, parsed), key, config


def table(rounds: list[tuple[Window, Window]], timed: Latency) -> list[str]:
    median = statistics.median
    ratios = [ours.rate / theirs.rate for ours, theirs in rounds]
    sides = [[window[i] for window in rounds] for i in (0, 1)]
    rate, cpu, memory = (
        [median(getattr(w, name) for w in side) for side in sides]
        for name in ("rate", "cpu", "resident_mb")
    )
    per_run = [median(w.cpu / w.rate * 1000 for w in side) for side in sides]
    return [
        f"| runs per second per worker process | {rate[0]:.1f} | {rate[1]:.1f} | "
        f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | >= {TARGET} |",
        f"| worker CPU per run | {per_run[0]:.1f} ms | {per_run[1]:.1f} ms | | |",
        f"| worker CPU use in the window | {cpu[0]:.0%} | {cpu[1]:.0%} | | |",
        f"| worker resident memory at the window's end | {memory[0]:.0f} MB "
        f"| {memory[1]:.0f} MB | | |",
        f"| run latency, POST sent to finished_at, at {timed.rate:.1f} runs/s, "
        f"p50 / p99 | {timed.p50_ms:.0f} / {timed.p99_ms:.0f} ms | | | |",
        f"| worker resident memory, idle / after the latency run | {timed.idle_mb:.0f} / "
        f"{timed.loaded_mb:.0f} MB | | | |",
    ]


if __name__ == "__main__":
    main()

"""Measure concurrent streamed turns: how many one api process holds while a slow model answers,
and what it adds to every token, against a hand-written relay of the same model.

    uv run --locked python -m benchmarks.benchmark_streams      # needs taskset (util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis, and a slow model
(benchmarks/benchmark_streams_model.py: OpenAI's wire format, one token every --interval for
--seconds, each token's text the time it was sent). Two servers are pinned to CPU 0 and take
turns: the generated api as its image starts it (`python -m app`, provider `openai` at the slow
model, its stream bounds and rate limit raised out of reach, everything else as generated), and
benchmarks/benchmark_streams_relay.py (FastAPI, asyncpg, httpx: the same rows and stream format,
nothing else). For each level of clients (--levels), the clients (benchmark_streams_clients.py,
pinned to CPU 1 with the model and the databases) start one streamed turn each, spread over
--ramp seconds, on conversations of their own; then the same against the relay, and against the
model alone (the rig's own delay, with no server in between). Prints a Markdown table for
docs/performance.md: streams held at once, errors, the delay added to each token (receive time
minus send time) p50/p99, time to the first token, and the server's memory per held stream.
Speed is measured here, never asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.benchmark_api import (
    BASELINE_DIR,
    LOAD_CPU,
    UNREACHED_LIMIT,
    hand_written,
    migrated_env,
    our_api,
    pinned,
    resident_mb,
    venv_python,
)
from benchmarks.benchmark_api import rendered_with_servers as rendered
from benchmarks.benchmark_streams_clients import Plan, Summary, Target
from tests.harness.api import Process, config_file, new_secret
from tests.harness.environment import free_port
from tests.project import Project

# Each client posts one message, as a user of the api would.
MESSAGE = "tell me a long story"
CREATE_CONCURRENCY = 32
# The clients are this many users, each with a key of their own (a key's streams are bounded).
KEYS = 8


@dataclass
class Side:
    name: str
    process: Process | None  # None: the clients talk to the model itself
    port: int

    def request(self, conversation: str, key: str) -> Target:
        """What one client sends: the api's streamed turn with the conversation's key."""
        if self.name == "api":
            headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
            return {"path": f"/v1/conversations/{conversation}/messages", "headers": headers}
        if self.name == "relay":
            return {"path": f"/relay/{conversation}", "headers": {}}
        return {"path": "/v1/chat/completions", "headers": {}}

    def body(self) -> dict[str, object]:
        if self.process is None:
            messages = [{"role": "user", "content": MESSAGE}]
            return {"model": "slow", "messages": messages, "stream": True}
        return {"content": MESSAGE}


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--levels", default="100,500,1000,2000", help="clients, comma-separated")
    parser.add_argument("--interval", type=float, default=0.05, help="the model's token interval")
    parser.add_argument("--seconds", type=float, default=10.0, help="the model's stream length")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds the starts spread over")
    return parser.parse_args()


def main() -> None:
    parsed = options()
    # Each stream holds two sockets in the server and two on the clients' side.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    levels = [int(level) for level in parsed.levels.split(",")]
    with rendered() as (work, project, postgres, redis):
        rows = measure(project, work, postgres.url, redis.url, levels, parsed)
    print(
        f"## {datetime.now(UTC):%Y-%m-%d}: a token every {parsed.interval * 1000:.0f} ms for "
        f"{parsed.seconds:.0f} s, clients starting over {parsed.ramp:.0f} s\n"
    )
    print(
        "| clients | server | held at once | ok | errors | added delay p50 / p99 ms "
        "| first token p50 / p99 ms | memory per held stream |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


def measure(
    project: Project,
    work: Path,
    database_url: str,
    redis_url: str,
    levels: list[int],
    parsed: argparse.Namespace,
) -> list[str]:
    model_port = free_port()
    command = [venv_python(project), str(BASELINE_DIR / "benchmark_streams_model.py")]
    command += ["--port", str(model_port), "--interval", str(parsed.interval)]
    command += ["--seconds", str(parsed.seconds)]
    model = Process(project, command, {}, work / "model.log")
    first_key, env = migrated_env(project, work, database_url, redis_url)
    keys = [first_key, *(new_secret() for _ in range(KEYS - 1))]
    env["API_KEYS"] = ",".join(keys)
    model_url = f"http://127.0.0.1:{model_port}/v1"
    config = config_file(
        project,
        work / "streams.yaml",
        {
            **UNREACHED_LIMIT,
            "llm": {"provider": "openai", "base_url": model_url, "model": "slow"},
            "agent": {"max_streams": 10_000, "max_streams_per_key": 1_000},
        },
    )
    ours, ours_port = our_api(
        project, {**env, "CONFIG_FILE": str(config), "OPENAI_API_KEY": "unused"}, work / "ours.log"
    )
    relay_env = {**env, "BASELINE_DATABASE_URL": database_url, "BASELINE_MODEL_URL": model_url}
    relay, relay_port = hand_written(
        project, "benchmark_streams_relay:create_app", relay_env, work / "relay.log"
    )
    sides = [
        Side("api", ours, ours_port),
        Side("relay", relay, relay_port),
        Side("model alone", None, model_port),
    ]
    started = [model, ours, relay]
    try:
        model.start()
        _pin(model, LOAD_CPU)
        for process, url in ((ours, f"{ours_port}/health"), (relay, f"{relay_port}/docs")):
            process.start()
            pinned(process)
            process.wait_for_http(f"http://127.0.0.1:{url}")
        rows = []
        for level in levels:
            results = {}
            for side in sides:
                conversations = asyncio.run(_conversations(ours_port, keys, level))
                requests = [side.request(c, k) for c, k in conversations]
                results[side.name] = _run_level(project, side, requests, parsed)
                time.sleep(2)  # the server closes what it held before the next side
            relay_held = max(results["relay"]["peak_open"], 1)
            for name, result in results.items():
                held = result["peak_open"]
                share = f" ({held / relay_held:.2f} of the relay's)" if name == "api" else ""
                rows.append(_row(level, name, result, share))
        return rows
    finally:
        for process in started:
            if process.popen is not None:
                process.stop()


def _pin(process: Process, cpu: str) -> None:
    assert process.popen is not None
    command = ["taskset", "-a", "-p", "-c", cpu, str(process.popen.pid)]
    subprocess.run(command, check=True, capture_output=True)


async def _conversations(port: int, keys: list[str], count: int) -> list[tuple[str, str]]:
    """count new conversations made through the api, the keys taking turns; with each, its key."""
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def one(key: str) -> tuple[str, str]:
            async with limit:
                response = await client.post(
                    "/v1/conversations", json={}, headers={"Authorization": f"Bearer {key}"}
                )
                response.raise_for_status()
                return str(response.json()["id"]), key

        made = (one(keys[i % len(keys)]) for i in range(count))
        return list(await asyncio.gather(*made))


class Measured(Summary):
    """The clients' summary with the server's resident memory, idle and at its highest."""

    idle_mb: float
    peak_mb: float


def _run_level(
    project: Project, side: Side, requests: list[Target], parsed: argparse.Namespace
) -> Measured:
    """Run the clients against one side; their summary, with the server's memory added."""
    plan: Plan = {
        "host": "127.0.0.1",
        "port": side.port,
        "requests": requests,
        "body": side.body(),
        "ramp_seconds": parsed.ramp,
        "tokens": round(parsed.seconds / parsed.interval),
        "deadline_seconds": parsed.ramp + parsed.seconds + 60,
    }
    sampler = _MemorySampler(side.process)
    sampler.start()
    command = ["taskset", "-c", LOAD_CPU, venv_python(project)]
    command.append(str(BASELINE_DIR / "benchmark_streams_clients.py"))
    try:
        out = subprocess.run(
            command, input=json.dumps(plan), capture_output=True, text=True, check=True
        ).stdout
    finally:
        sampler.stop()
    summary: Summary = json.loads(out)
    return {**summary, "idle_mb": sampler.idle, "peak_mb": sampler.peak}


class _MemorySampler(threading.Thread):
    """The server's resident memory before the clients start and at its highest during them."""

    def __init__(self, process: Process | None) -> None:
        super().__init__(daemon=True)
        self.pid = process.popen.pid if process is not None and process.popen else None
        self.idle = self.peak = resident_mb(self.pid) if self.pid else 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        while self.pid and not self.stopping.wait(0.2):
            self.peak = max(self.peak, resident_mb(self.pid))

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def _row(level: int, side: str, result: Measured, share: str) -> str:
    delay, first, held = result["delay_ms"], result["first_token_ms"], result["peak_open"]
    error_text = ", ".join(f"{n} {what}" for what, n in result["errors"].items()) or "0"
    grown = result["peak_mb"] - result["idle_mb"]
    memory = f"{grown * 1024 / held:.0f} KB" if held and side != "model alone" else ""
    return (
        f"| {level} | {side} | {held}{share} | {result['ok']} | {error_text} | "
        f"{delay['p50']:.1f} / {delay['p99']:.1f} | {first['p50']:.0f} / {first['p99']:.0f} | "
        f"{memory} |"
    )


if __name__ == "__main__":
    main()

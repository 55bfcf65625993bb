"""Measure the generated api against a hand-written baseline doing the same work, in one run.

    uv run --locked python -m benchmarks.benchmark_api    # needs wrk, taskset (util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis from the machine's
binaries, migrates, then starts two servers pinned to CPU 0 (`taskset -c 0`): the generated api
exactly as its image starts it (`python -m app`), and benchmarks/benchmark_baseline.py under the
same uvicorn (and a third: the api with metrics off). wrk, pinned to CPU 1, loads one endpoint of
one server at a time: a warm-up of each side, then rounds (--rounds, 3) of a measured run of
ours and one of the other side, back to back, since the machine's speed drifts. Prints a
Markdown table for docs/performance.md: medians of throughput and of the per-round ratio ours /
baseline (with its range and target), p50 and p99 latency, and the api's resident memory idle
and right after the load. Speed is measured here, never asserted by a test.

    --pairs create,turn       only these pairs (health, live, create, turn, metrics)
    --server granian          our api (both of its servers) under Granian instead of uvicorn,
                              Granian installed from PyPI into the rendered project for the run;
                              the baseline stays on uvicorn
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.harness.api import Process, api_env, config_file, new_secret
from tests.harness.environment import free_port
from tests.harness.postgres_server import PostgresServer, start_postgres
from tests.harness.redis_server import RedisServer, start_redis
from tests.project import Project, install, render, uv

SERVER_CPU = "0"
LOAD_CPU = "1"
BASELINE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Pair:
    key: str  # what --pairs names it
    name: str
    target: float
    ours: tuple[str, str, str | None]  # method, path, JSON body
    baseline: tuple[str, str, str | None]
    # Which server answers the baseline's side: the hand-written app, or ours with metrics off.
    against: str = "baseline"


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def wrk_script(method: str, body: str | None, headers: dict[str, str], directory: Path) -> Path:
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = '{body}'")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    path = directory / f"{method.lower()}-{abs(hash((body, tuple(headers.items()))))}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(
    url: str, script: Path, seconds: int, connections: int, timeout_seconds: int = 2
) -> Result:
    """One wrk run on CPU 1; its throughput and latency percentiles (of the answers that came
    within timeout_seconds: wrk counts the others as errors, not in its percentiles)."""
    command = ["taskset", "-c", LOAD_CPU, "wrk", "--latency", "-t1", f"-c{connections}"]
    command += [f"-d{seconds}s", f"--timeout={timeout_seconds}s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        raise SystemExit(f"{url} answered errors under load:\n{output}")
    rate = float(_found(r"Requests/sec:\s+([\d.]+)", output)[0])
    return Result(rate, _percentile(output, "50%"), _percentile(output, "99%"))


def load_each(
    base: str,
    endpoints: dict[str, tuple[str, str, str | None]],
    auth: dict[str, str],
    work: Path,
    seconds: int,
    connections: int,
    timeout_seconds: int = 2,
) -> dict[str, Result]:
    """Load each endpoint (name: method, path, JSON body or None) in turn: a 3 s warm-up,
    then the measured run."""
    results = {}
    for name, (method, path, body) in endpoints.items():
        script = wrk_script(method, body, auth, work)
        load(base + path, script, 3, connections, timeout_seconds)
        results[name] = load(base + path, script, seconds, connections, timeout_seconds)
    return results


def _percentile(output: str, label: str) -> float:
    value, unit = _found(rf"{label}\s+([\d.]+)(us|ms|s)", output)
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _found(pattern: str, text: str) -> tuple[str, ...]:
    """The groups of pattern's first match in text; stop, showing the text, if there is none."""
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"no {pattern!r} in:\n{text}")
    return match.groups()


def resident_mb(pid: int) -> float:
    """The resident memory of the process and of its children (Granian serves from one)."""
    status = Path(f"/proc/{pid}/status").read_text()
    own = int(_found(r"VmRSS:\s+(\d+) kB", status)[0]) / 1024
    children = (
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    )
    return own + sum(resident_mb(child) for child in children)


def pinned(process: Process, cpu: str = SERVER_CPU) -> None:
    assert process.popen is not None
    pin(process.popen.pid, cpu)


def pin(pid: int, cpu: str) -> None:
    """Keep every thread of the process on one CPU (its later threads and children inherit it)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], check=True, capture_output=True)


def options(
    description: str,
    connections: int,
    *,
    seconds: int = 10,
    rounds: bool = False,
    more: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The command line every api benchmark takes (and what `more` adds to it); stops when
    wrk or taskset is missing."""
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=seconds, help="measured run per endpoint")
    parser.add_argument("--connections", type=int, default=connections)
    if rounds:
        parser.add_argument(
            "--rounds", type=int, default=3, help="alternating measured runs of each side"
        )
    if more is not None:
        more(parser)
    parsed = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (Debian: apt-get install wrk util-linux)")
    return parsed


@contextmanager
def rendered_with_servers() -> Iterator[tuple[Path, Project, PostgresServer, RedisServer]]:
    """A scratch directory with the default project installed, and real PostgreSQL and Redis."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        project = install(render(work / "render", {}))
        postgres = start_postgres(work / "pg")
        redis = start_redis(work / "redis")
        try:
            yield work, project, postgres, redis
        finally:
            redis.stop()
            postgres.stop()


PAIRS = ("health", "live", "create", "turn", "metrics")
SERVERS = ("uvicorn", "granian")
# The Granian measured by --server granian; pinned, so that a run can be repeated.
GRANIAN = "granian==2.8.9"


def _choices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", choices=SERVERS, default=SERVERS[0], help="ours runs on")
    parser.add_argument(
        "--pairs",
        type=lambda text: text.split(","),
        default=list(PAIRS),
        help=f"comma-separated, of {','.join(PAIRS)}",
    )


def main() -> None:
    parsed = options(__doc__ or "", connections=16, seconds=5, rounds=True, more=_choices)
    if unknown := set(parsed.pairs) - set(PAIRS):
        sys.exit(f"unknown pairs {sorted(unknown)}; known: {', '.join(PAIRS)}")
    with rendered_with_servers() as (work, project, postgres, redis):
        rows = measure(project, work, postgres.url, redis.url, parsed)
    print(
        f"## {datetime.now(UTC):%Y-%m-%d}, {parsed.rounds} rounds of {parsed.seconds} s per "
        f"side, {parsed.connections} connections, ours under {parsed.server} "
        "(medians; the ratio's range in brackets)\n"
    )
    print(
        "| pair | ours req/s | baseline req/s | ratio | target | ours p50 / p99 ms "
        "| baseline p50 / p99 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


def _round(sides: list[tuple[str, Path]], options: argparse.Namespace) -> tuple[Result, Result]:
    """One measured run of ours, then one of the other side, back to back."""
    mine, theirs = (
        load(url, script, options.seconds, options.connections) for url, script in sides
    )
    return mine, theirs


def _row(pair: Pair, rounds: list[tuple[Result, Result]]) -> str:
    """The pair's medians over the rounds; the machine's speed drifts between runs, so each
    ratio is taken within one round, seconds apart, and their range is shown too."""
    ratios = [mine.requests_per_second / theirs.requests_per_second for mine, theirs in rounds]
    median = statistics.median
    mine = [m for m, _ in rounds]
    theirs = [t for _, t in rounds]
    return (
        f"| {pair.name} | {median(r.requests_per_second for r in mine):.0f} | "
        f"{median(r.requests_per_second for r in theirs):.0f} | "
        f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | >= {pair.target} | "
        f"{median(r.p50_ms for r in mine):.1f} / {median(r.p99_ms for r in mine):.1f} | "
        f"{median(r.p50_ms for r in theirs):.1f} / {median(r.p99_ms for r in theirs):.1f} |"
    )


def venv_python(project: Project) -> str:
    """The interpreter of the project's own virtual environment."""
    return str(project.path / ".venv/bin/python")


# A rate limit no benchmark reaches: the limiter still runs on every request.
UNREACHED_LIMIT = {"rate_limit": {"requests": 10**9}}


def migrated_env(
    project: Project,
    work: Path,
    database_url: str,
    redis_url: str,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[str, dict[str, str]]:
    """An API key, and the generated api's environment (its own config with UNREACHED_LIMIT,
    and any other sections given) on a database migrated to the head."""
    key = new_secret()
    config = config_file(project, work / "config.yaml", {**UNREACHED_LIMIT, **(overrides or {})})
    env = api_env(
        work, database_url=database_url, redis_url=redis_url, API_KEYS=key, CONFIG_FILE=str(config)
    )
    project.run(venv_python(project), "-m", "alembic", "upgrade", "head", env=env)
    return key, env


def our_api(
    project: Project, env: dict[str, str], log: Path, server: str = "uvicorn"
) -> tuple[Process, int]:
    """The generated api as its image starts it (`python -m app`), on a free loopback port;
    or under Granian (which install_granian put in the project), as close to that as it goes."""
    port = free_port()
    if server == "granian":
        return Process(project, granian_command(project, port), env, log), port
    command = [venv_python(project), "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
    return Process(project, command, env, log), port


@contextmanager
def pinned_api(project: Project, env: dict[str, str], work: Path) -> Iterator[tuple[Process, str]]:
    """The generated api as its image starts it, pinned to SERVER_CPU and answering /health:
    the process and its base URL; stopped after."""
    api, port = our_api(project, env, work / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        api.start()
        pinned(api)
        api.wait_for_http(f"{base}/health")
        yield api, base
    finally:
        api.stop()


def hand_written(
    project: Project, factory: str, env: dict[str, str], log: Path
) -> tuple[Process, int]:
    """A hand-written app of benchmarks/ (module:factory) under the same uvicorn as ours, in the
    project's virtual environment, on a free loopback port; no access log."""
    port = free_port()
    command = [venv_python(project), "-m", "uvicorn", "--factory", "--app-dir", str(BASELINE_DIR)]
    command += [factory, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning"]
    return Process(project, command, env, log), port


def install_granian(project: Project) -> None:
    project.run(uv(), "pip", "install", "--python", venv_python(project), GRANIAN)


def granian_command(project: Project, port: int) -> list[str]:
    """Granian with what `python -m app` gives uvicorn: the app factory, one worker on uvloop,
    HTTP/1.1, 20 s for in-flight requests at a stop, no access log (the app logs requests).

    Granian serves from a worker process it starts: taskset pins both from the start, where
    pinned() would reach only the main process.
    """
    granian = str(project.path / ".venv/bin/granian")
    command = ["taskset", "-c", SERVER_CPU, granian, "--interface", "asgi", "--factory"]
    command += ["--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--http", "1"]
    command += ["--no-ws", "--workers-kill-timeout", "20", "--no-access-log"]
    command += ["--host", "127.0.0.1", "--port", str(port), "app.main:create_app"]
    return command


def measure(
    project: Project, work: Path, database_url: str, redis_url: str, options: argparse.Namespace
) -> list[str]:
    key, env = migrated_env(project, work, database_url, redis_url)
    if options.server == "granian":
        install_granian(project)
    ours, ours_port = our_api(project, env, work / "ours.log", options.server)
    # The same api with metrics.enabled false: what counting every request costs.
    unmetered_config = config_file(
        project, work / "unmetered.yaml", {**UNREACHED_LIMIT, "metrics": {"enabled": False}}
    )
    unmetered, unmetered_port = our_api(
        project,
        {**env, "CONFIG_FILE": str(unmetered_config)},
        work / "unmetered.log",
        options.server,
    )
    baseline_env = {**env, "BASELINE_DATABASE_URL": database_url, "BASELINE_REDIS_URL": redis_url}
    baseline, baseline_port = hand_written(
        project, "benchmark_baseline:create_app", baseline_env, work / "baseline.log"
    )
    rows = []
    servers = ((ours, ours_port), (baseline, baseline_port), (unmetered, unmetered_port))
    for process, port in servers:
        process.start()
        pinned(process)
        process.wait_for_http(f"http://127.0.0.1:{port}/health")
    try:
        assert ours.popen is not None
        idle = resident_mb(ours.popen.pid)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client() as client:
            ours_conversation = client.post(
                f"http://127.0.0.1:{ours_port}/v1/conversations", json={}, headers=auth
            ).json()["id"]
            baseline_conversation = client.post(
                f"http://127.0.0.1:{baseline_port}/v1/conversations", json={}
            ).json()["id"]
        message = '{"content": "hello there"}'
        pairs = [
            Pair("health", "`/health`", 0.7, ("GET", "/health", None), ("GET", "/health", None)),
            Pair(
                "live",
                "`/health/live` vs a constant",
                0.9,
                ("GET", "/health/live", None),
                ("GET", "/constant", None),
            ),
            Pair(
                "create",
                "`POST /v1/conversations`",
                0.5,
                ("POST", "/v1/conversations", '{"title": "b"}'),
                ("POST", "/v1/conversations", '{"title": "b"}'),
            ),
            Pair(
                "turn",
                "message turn (echo)",
                0.5,
                ("POST", f"/v1/conversations/{ours_conversation}/messages", message),
                ("POST", f"/v1/conversations/{baseline_conversation}/messages", message),
            ),
            Pair(
                "metrics",
                "`/health/live`, metrics enabled vs disabled",
                0.9,
                ("GET", "/health/live", None),
                ("GET", "/health/live", None),
                against="unmetered",
            ),
        ]
        for pair in (pair for pair in pairs if pair.key in options.pairs):
            other = baseline_port if pair.against == "baseline" else unmetered_port
            sides = []
            for port, (method, path, body), headers in (
                (ours_port, pair.ours, auth),
                (other, pair.baseline, {}),
            ):
                script = wrk_script(method, body, headers, work)
                url = f"http://127.0.0.1:{port}{path}"
                load(url, script, 3, options.connections)  # warm-up
                sides.append((url, script))
            rows.append(_row(pair, [_round(sides, options) for _ in range(options.rounds)]))
        loaded = resident_mb(ours.popen.pid)
        rows.append(
            f"| api resident memory | idle {idle:.0f} MB | after the load {loaded:.0f} MB | | | | |"
        )
    finally:
        for process, _ in servers:
            process.stop()
    return rows


if __name__ == "__main__":
    main()

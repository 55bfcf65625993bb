"""Measure the work one api process gets done as closed-loop load grows past what it admits.

    uv run --locked python -m benchmarks.benchmark_overload    # needs wrk, taskset (util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis, migrates, and starts
the generated api as its image starts it (`python -m app`) pinned to CPU 0, its rate limit
raised out of reach (benchmark_api's helpers; everything else as generated). wrk, pinned to
CPU 1, loads it at each level of connections (--levels: 16, 64, 256 and 1,024) for --seconds,
after a warm-up, for two kinds of work (--kinds):

- creates: `POST /v1/conversations` with one key; the work is the rows added to
  `conversations`;
- turns: a message with `Accept: text/event-stream` on the echo model, round KEYS keys with
  CONVERSATIONS_PER_KEY new conversations each at every level (so that every level starts
  from the same short histories). Several keys, so that the per-key stream bound
  (`agent.max_streams_per_key`, 8) never decides: the process's bounds do. The work is the
  assistant messages added to `messages` (turns that finished).

wrk is closed-loop: each connection sends its next request as soon as its answer comes, 503 or
not, as a client that retries at once does. The work is counted in the database, not from
wrk's 2xx, over a window that opens a second into the load and lasts --seconds; after each
level the script waits until the api has answered what wrk left queued in it. The levels run
in turn, --rounds times (the machine's speed drifts). Prints a Markdown table per kind for
docs/performance.md: work per second, the ratio of each level's work to the work at 64
connections in the same round (the load that fits: `requests.max_bodies_in_flight` is 64),
refusals per second by status (wrk) and by reason (the api's admission_rejections_total),
wrk's p50/p99 latency (answers of every status), and the api's peak resident memory.

    --profile FILE            py-spy (on CPU 1, non-blocking) records the api in raw
                              (collapsed) form at --profile-level connections (256) of the
                              first kind, first round; that level's figures carry its cost

Speed is measured here, never asserted by a test.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.benchmark_api import (
    LOAD_CPU,
    migrated_env,
    options,
    pinned_api,
    rendered_with_servers,
    resident_mb,
)
from tests.harness.api import Process, new_secret
from tests.harness.postgres_server import PostgresServer

LEVELS = (16, 64, 256, 1024)
# The level the generated bounds admit whole: requests.max_bodies_in_flight.
FITS = 64
KINDS = ("creates", "turns")
# Turns rotate over this many keys: at 1,024 connections and agent.max_streams (100) streams
# open, a key holds about 3 on average, below its own bound (8).
KEYS = 32
# Each key's turns go round this many conversations of its own.
CONVERSATIONS_PER_KEY = 4
WARM_UP_SECONDS = 3
# The load runs this long before the window opens, so that every connection is in the loop.
RAMP_SECONDS = 1
WORK = {
    "creates": "SELECT count(*) FROM conversations",
    "turns": "SELECT count(*) FROM messages WHERE role = 'assistant'",
}

# Each request rotates over the (path, key) pairs; every answer's status is counted.
LUA = """
local targets = {%s}
local body = '%s'
local accept = "%s"
local i = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function request()
  i = i %% #targets + 1
  local headers = {["Content-Type"] = "application/json"}
  headers["Authorization"] = "Bearer " .. targets[i][2]
  if accept ~= "" then headers["Accept"] = accept end
  return wrk.format("POST", targets[i][1], headers, body)
end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %%d %%d\\n", status, count))
    end
  end
end
"""


@dataclass(frozen=True)
class Level:
    connections: int
    work_per_second: float
    refused_per_second: dict[int, float]  # by status, answers other than 2xx
    reasons: dict[str, float]  # the api's admission refusals per second, by reason
    socket_errors: str
    p50_ms: float
    p99_ms: float
    peak_mb: float


def lua_script(path: Path, targets: list[tuple[str, str]], body: str, accept: str) -> Path:
    pairs = ", ".join(f'{{"{url_path}", "{key}"}}' for url_path, key in targets)
    path.write_text(LUA % (pairs, body, accept))
    return path


def run_level(
    url: str,
    script: Path,
    connections: int,
    seconds: int,
    count: Callable[[], int],
    pid: int,
    profile: Path | None = None,
) -> Level:
    """One wrk run on CPU 1; the work counted in the database over its steady window."""
    duration = RAMP_SECONDS + seconds + 1
    refused_before = _refusals(url)
    command = ["taskset", "-c", LOAD_CPU, "wrk", "--latency", "-t1", f"-c{connections}"]
    command += [f"-d{duration}s", "--timeout", "30s", "-s", str(script), url]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    spy = _profiler(pid, duration, profile) if profile else None
    peak = [resident_mb(pid)]
    sampler = threading.Thread(target=_sample, args=(pid, duration, peak), daemon=True)
    sampler.start()
    time.sleep(RAMP_SECONDS)
    before, started = count(), time.monotonic()
    time.sleep(seconds)
    after, ended = count(), time.monotonic()
    output, _ = wrk.communicate()
    if spy is not None:
        spy.wait()
    sampler.join()
    _settle(url)
    refused_after = _refusals(url)
    statuses = {int(s): int(n) for s, n in re.findall(r"status (\d+) (\d+)", output)}
    errors = re.search(r"Socket errors: (.*)", output)
    return Level(
        connections,
        (after - before) / (ended - started),
        {s: n / duration for s, n in sorted(statuses.items()) if not 200 <= s < 300},
        {
            r: (n - refused_before.get(r, 0)) / duration
            for r, n in refused_after.items()
            if n > refused_before.get(r, 0)
        },
        errors.group(1) if errors else "",
        _percentile(output, "50%"),
        _percentile(output, "99%"),
        max(peak),
    )


def _refusals(url: str) -> dict[str, float]:
    """The api's admission refusals so far, by reason, from its /metrics."""
    scraped = httpx.get(f"{url}/metrics", timeout=120).text
    found = re.findall(r'^admission_rejections_total\{reason="(\w+)"\} ([\d.e+]+)', scraped, re.M)
    return {reason: float(count) for reason, count in found}


def _settle(url: str) -> None:
    """Until the api has answered what wrk left queued in it: the next level starts idle."""
    with httpx.Client(base_url=url, timeout=120) as client:
        while True:
            scraped = client.get("/metrics").text
            match = re.search(r"^http_requests_inprogress(?:\{[^}]*\})? ([\d.]+)", scraped, re.M)
            if match is None or float(match[1]) == 0:
                return
            time.sleep(0.2)


def _profiler(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy not found (uv tool install py-spy)")
    command = ["taskset", "-c", LOAD_CPU, spy, "record", "-r", "250", "-f", "raw", "-p", str(pid)]
    command += ["-d", str(seconds), "--nonblocking", "-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sample(pid: int, seconds: int, peak: list[float]) -> None:
    """The api's resident memory, every half second of the run."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        peak.append(resident_mb(pid))
        time.sleep(0.5)


def _percentile(output: str, label: str) -> float:
    match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", output)
    if match is None:
        raise SystemExit(f"no {label} latency in wrk's output:\n{output}")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


def _more(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--levels", type=lambda t: [int(n) for n in t.split(",")], default=list(LEVELS)
    )
    parser.add_argument("--kinds", type=lambda t: t.split(","), default=list(KINDS))
    parser.add_argument("--rounds", type=int, default=2, help="each level, in turn, this often")
    parser.add_argument("--profile", type=Path, help="py-spy's raw output, into this file")
    parser.add_argument(
        "--profile-level", type=int, default=256, help="of the first kind, in the first round"
    )


def main() -> None:
    parsed = options(__doc__ or "", connections=FITS, seconds=10, more=_more)
    if unknown := set(parsed.kinds) - set(KINDS):
        sys.exit(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    with rendered_with_servers() as (work, project, postgres, redis):
        key, env = migrated_env(project, work, postgres.url, redis.url)
        keys = [key, *(new_secret() for _ in range(KEYS - 1))]
        env["API_KEYS"] = ",".join(keys)
        with pinned_api(project, env, work) as (api, base):
            tables = [
                measure(kind, api, base, keys, postgres, work, parsed) for kind in parsed.kinds
            ]
    print(
        f"## {datetime.now(UTC):%Y-%m-%d}, {parsed.seconds} s per level after "
        f"{WARM_UP_SECONDS} s of warm-up, api on CPU 0, wrk on CPU 1\n"
    )
    for table in tables:
        print(table)


def measure(
    kind: str,
    api: Process,
    base: str,
    keys: list[str],
    postgres: PostgresServer,
    work: Path,
    parsed: argparse.Namespace,
) -> str:

    def script() -> Path:
        """The level's wrk script; turns go to new conversations at every level, so that
        each level's turns start from the same short histories."""
        if kind == "creates":
            targets = [("/v1/conversations", keys[0])]
            return lua_script(work / "creates.lua", targets, '{"title": "b"}', "")
        targets = _conversations(base, keys)
        body = '{"content": "hello there"}'
        return lua_script(work / "turns.lua", targets, body, "text/event-stream")

    assert api.popen is not None
    pid = api.popen.pid

    def count() -> int:
        return int(postgres.query(WORK[kind]))

    run_level(base, script(), FITS, WARM_UP_SECONDS, count, pid)
    rounds = []
    for round_ in range(parsed.rounds):
        levels = []
        for connections in parsed.levels:
            profiled = kind == parsed.kinds[0] and connections == parsed.profile_level
            profiled = profiled and round_ == 0
            profile = parsed.profile if profiled else None
            levels.append(
                run_level(base, script(), connections, parsed.seconds, count, pid, profile)
            )
            print(f"{kind} {levels[-1]}", file=sys.stderr)
        rounds.append(levels)
    return table(kind, rounds)


def _conversations(base: str, keys: list[str]) -> list[tuple[str, str]]:
    """CONVERSATIONS_PER_KEY new conversations of each key: (the path of their messages, key)."""
    targets = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(CONVERSATIONS_PER_KEY):
            for key in keys:
                auth = {"Authorization": f"Bearer {key}"}
                answer = client.post("/v1/conversations", json={}, headers=auth)
                answer.raise_for_status()
                targets.append((f"/v1/conversations/{answer.json()['id']}/messages", key))
    return targets


def table(kind: str, rounds: list[list[Level]]) -> str:
    """The kind's Markdown table: one row per level, medians over the rounds; each level's
    work against the work at FITS connections in the same round (the machine's speed drifts),
    the median ratio with its range."""
    what = "rows created/s" if kind == "creates" else "turns finished/s"
    lines = [
        f"### {kind}, {len(rounds)} rounds (medians; the ratio's range in brackets)\n",
        f"| connections | {what} | vs {FITS} | refused/s by status (by reason) | p50 / p99 ms "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for index, first in enumerate(rounds[0]):
        levels = [levels[index] for levels in rounds]
        lines.append(_row(first.connections, levels, [_fits(levels) for levels in rounds]))
    return "\n".join(lines) + "\n"


def _fits(levels: list[Level]) -> Level | None:
    return next((level for level in levels if level.connections == FITS), None)


def _row(connections: int, levels: list[Level], fits: list[Level | None]) -> str:
    median = statistics.median
    ratios = [
        level.work_per_second / fit.work_per_second
        for level, fit in zip(levels, fits, strict=True)
        if fit is not None and fit.work_per_second
    ]
    ratio = f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else ""
    statuses = sorted({s for level in levels for s in level.refused_per_second})
    reasons = sorted({r for level in levels for r in level.reasons})
    refused = ", ".join(
        f"{median(lv.refused_per_second.get(s, 0) for lv in levels):.0f} x {s}" for s in statuses
    )
    if reasons:
        per_reason = (f"{r} {median(lv.reasons.get(r, 0) for lv in levels):.0f}" for r in reasons)
        refused += f" ({', '.join(per_reason)})"
    errors = "; ".join(level.socket_errors for level in levels if level.socket_errors)
    if errors:
        refused += f"; socket errors: {errors}"
    return (
        f"| {connections:,} | {median(lv.work_per_second for lv in levels):.0f} | {ratio} "
        f"| {refused or 'none'} | {median(lv.p50_ms for lv in levels):.0f} / "
        f"{median(lv.p99_ms for lv in levels):.0f} | {max(lv.peak_mb for lv in levels):.0f} |"
    )


if __name__ == "__main__":
    main()

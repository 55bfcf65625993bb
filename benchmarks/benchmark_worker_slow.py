"""Measure how many slow-model runs one worker process holds at once, against a minimal taskiq
worker calling the same model.

    uv run --locked python -m benchmarks.benchmark_worker_slow      # needs taskset (util-linux)

Renders and installs the default project, starts real PostgreSQL and Redis from the machine's
binaries (moved to CPU 1, with this script) and migrates, and starts the slow model on CPU 1
(benchmarks/benchmark_streams_model.py with --tool-calls 2: OpenAI's wire format, every call
--call-seconds long, the answer a `current_time` call while the conversation holds fewer than
two tool results, then text). A run makes three model calls and two tool calls, and writes
five messages and six events, as in benchmarks/benchmark_worker.py.

For each concurrency of --levels, one worker at a time runs on CPU 0: ours exactly as its image
starts it (`python -m app.worker`, the generated config.yaml with `llm.provider: openai` at the
slow model and `worker.concurrency` at the level), then the baseline
(benchmarks/benchmark_worker_slow_baseline.py: a minimal taskiq worker at the same concurrency
writing the same rows, the model over HTTP; its docstring says what it leaves out). Runs are
stored directly and their ids sent with the generated api's own `enqueue`, spread evenly at
ARRIVAL times what the level can take (concurrency / run time), so that they start and end one
by one and the queue never runs dry. From the first finished run (the worker then holds all it
can), after --settle seconds, a --seconds window: the worker's CPU, and once a second the runs
with status running, the PostgreSQL connections of the worker (pg_stat_activity: open, and in
use, i.e. not idle) and its Redis connections (CLIENT LIST, this script's own left out). The
runs per second a worker sustains are the runs it held over their run time (Little's law: the
mean of the samples over the mean time from `running` to `done` of the runs claimed in the
window). Counting the runs that end in the window would measure the arrivals instead: with a
model of constant speed, the runs that end in it are those that arrived one run time earlier.
The delay added per step is that run time less its three model calls, over three (the median
and p99 of those runs). Then the queue is drained and every run must have ended succeeded with
exactly the expected rows; a run that did not counts as an error, and so does an error line in
the worker's log. Resident memory per held run is the worker's growth from idle to the
window's end over the runs held.

A level takes about three run times (fill, window, drain): by default about 18 minutes for
the five levels of both workers. Prints a Markdown table for docs/performance.md. Speed is
measured here, never asserted by a test.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis

from benchmarks.benchmark_api import (
    BASELINE_DIR,
    LOAD_CPU,
    UNREACHED_LIMIT,
    migrated_env,
    pinned,
    rendered_with_servers,
    venv_python,
)
from benchmarks.benchmark_worker import servers_on_load_cpu
from benchmarks.benchmark_worker_batches import CONTENT, Bench, cpu_seconds, resident
from tests.harness.api import Process, config_file
from tests.harness.environment import free_port

SIDES = ("ours", "baseline")
RUN_CALLS = 3  # model calls per run
# Runs sent per second, over what the level can take: enough that the worker always has one
# waiting, few enough that the queue drains soon after the window.
ARRIVAL = 1.1
START_SECONDS = 60.0
# pg_stat_activity's client connections other than this query's, and the level's running runs.
CONNECTIONS = """
SELECT (SELECT count(*) FROM runs WHERE owner = '{owner}' AND status = 'running'),
       count(*), count(*) FILTER (WHERE state <> 'idle')
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
# Per run claimed in the window: the seconds from its running event to its done event.
SPANS = """
SELECT extract(epoch FROM max(e.created_at) FILTER (WHERE e.name = 'done')
                         - min(e.created_at) FILTER (WHERE e.name = 'running'))
FROM runs r JOIN run_events e ON e.run_id = r.id
WHERE r.owner = '{owner}' AND r.status = 'succeeded' GROUP BY r.id
HAVING min(e.created_at) FILTER (WHERE e.name = 'running') BETWEEN {start} AND {end}
"""
NOW = "SELECT to_timestamp(extract(epoch FROM clock_timestamp()))"
ERROR_LINE = re.compile(r'"level": "(ERROR|CRITICAL)"|^Traceback', re.MULTILINE)


@dataclass(frozen=True)
class Level:
    side: str
    concurrency: int
    held: float  # runs running at once, mean of the samples
    held_max: int
    rate: float  # runs the worker sustains per second: held / run time
    errors: int  # runs not ended as expected + error lines in the worker's log
    cpu: float  # the share of one core the worker used in the window
    mb_per_run: float
    pg_open: int  # the worker's PostgreSQL connections, most at once
    pg_busy: int  # of which in a statement or transaction, most at once
    redis: int  # the worker's Redis connections, most at once
    delay_ms: tuple[float, float]  # added per model step, p50 and p99


@dataclass
class SlowBench(Bench):
    model_url: str = ""
    configs: dict[int, Path] | None = None
    completion_tokens: int = 0  # of a whole run

    def slow_worker(self, side: str, concurrency: int) -> Process:
        python = venv_python(self.project)
        log = self.work / f"{side}-{concurrency}.log"
        if side == "ours":
            assert self.configs is not None
            env = {**self.env, "CONFIG_FILE": str(self.configs[concurrency])}
            return Process(self.project, [python, "-m", "app.worker"], env, log)
        command = [python, "-m", "benchmark_worker_slow_baseline", "work", self.model_url]
        env = {**self.baseline_env, "BASELINE_CONCURRENCY": str(concurrency)}
        return Process(self.project, command, env, log)

    def filler(self, owner: str, count: int, seconds: float) -> Process:
        command = [venv_python(self.project), "-m", "benchmark_worker_slow_baseline", "queue"]
        command += [str(count), owner, CONTENT, str(seconds)]
        return Process(self.project, command, self.baseline_env, self.work / f"{owner}.log")

    def level(self, side: str, concurrency: int) -> Level:
        parsed = self.options
        run_seconds = RUN_CALLS * parsed.call_seconds
        fill = run_seconds + parsed.settle + parsed.seconds
        count = math.ceil(ARRIVAL * concurrency / run_seconds * fill)
        owner = f"{side}-{concurrency}"
        worker = self.slow_worker(side, concurrency)
        worker.start()
        pinned(worker)
        try:
            self.wait(worker, lambda: "worker started" in worker.output(), "did not start")
            idle = resident(worker)
            filler = self.filler(owner, count, fill)
            filler.start()
            succeeded = (
                f"SELECT count(*) FROM runs WHERE owner = '{owner}' AND status = 'succeeded'"
            )
            self.wait(worker, lambda: self.query(succeeded) != "0", "finished no run")
            time.sleep(parsed.settle)
            window = self.sampled(worker, owner)
            memory = resident(worker)
            assert filler.popen is not None
            filler.popen.wait(timeout=fill + START_SECONDS)
            self.drained(worker, owner)
        finally:
            worker.stop()
        total, good, _ = self.query(
            CHECK_ROWS.format(owner=owner, completion=self.completion_tokens)
        ).split("|")
        errors = int(total) - int(good) + (count - int(total))
        errors += len(ERROR_LINE.findall(worker.output()))
        held = statistics.mean(window["held"])
        window_runs = SPANS.format(owner=owner, start=window["start"], end=window["end"])
        spans = [float(s) for s in self.query(window_runs).split()]
        delays = [(s - run_seconds) / RUN_CALLS * 1000 for s in spans]
        # Little's law, in the window: what the worker sustains (see the module's doc).
        window["rate"] = held / statistics.mean(spans)
        print(
            f"{owner}: {count} runs, {window['rate']:.2f} runs/s, held {held:.0f}", file=sys.stderr
        )
        return Level(
            side,
            concurrency,
            held,
            max(window["held"]),
            window["rate"],
            errors,
            window["cpu"],
            (memory - idle) / max(held, 1),
            max(window["pg_open"]),
            max(window["pg_busy"]),
            max(window["redis"]),
            (statistics.median(delays), statistics.quantiles(delays, n=100)[98]),
        )

    def sampled(self, worker: Process, owner: str) -> dict[str, Any]:
        """Sample once a second for --seconds; the window's bounds, CPU and samples."""
        samples: dict[str, Any] = {"held": [], "pg_open": [], "pg_busy": [], "redis": []}
        samples["start"] = f"'{self.query(NOW)}'::timestamptz"
        start, cpu = time.monotonic(), cpu_seconds(worker)
        while time.monotonic() - start < self.options.seconds:
            held, pg_open, pg_busy = self.query(CONNECTIONS.format(owner=owner)).split("|")
            clients = self.redis.client_list()
            samples["held"].append(int(held))
            samples["pg_open"].append(int(pg_open))
            samples["pg_busy"].append(int(pg_busy))
            samples["redis"].append(sum(1 for c in clients if not c["name"].startswith("bench")))
            time.sleep(max(0.0, 1 - (time.monotonic() - start) % 1))
        seconds = time.monotonic() - start
        samples["end"] = f"'{self.query(NOW)}'::timestamptz"
        samples["cpu"] = (cpu_seconds(worker) - cpu) / seconds
        return samples


# total | runs ended succeeded with exactly the expected rows (benchmark_worker_batches.CHECK)
CHECK_ROWS = """
WITH r AS (SELECT * FROM runs WHERE owner = '{owner}'),
m AS (
    SELECT run_id, count(*) FILTER (WHERE role = 'assistant') AS assistant,
           count(*) FILTER (WHERE role = 'tool' AND content NOT LIKE 'error%') AS tool,
           count(*) AS messages
    FROM messages WHERE run_id IN (SELECT id FROM r) GROUP BY run_id
),
e AS (
    SELECT run_id, string_agg(name, ',' ORDER BY id) AS names
    FROM run_events WHERE run_id IN (SELECT id FROM r) GROUP BY run_id
)
SELECT count(*),
       count(*) FILTER (
           WHERE r.status = 'succeeded' AND r.stop_reason = 'completed' AND r.attempts = 1
             AND r.lease_until IS NULL AND r.finished_at IS NOT NULL
             AND m.assistant = 3 AND m.tool = 2 AND m.messages = 5
             AND r.prompt_tokens = 3 AND r.completion_tokens = {completion}
             AND e.names = 'running,tool_call,tool_result,tool_call,tool_result,done'
       ),
       0
FROM r LEFT JOIN m ON m.run_id = r.id LEFT JOIN e ON e.run_id = r.id
"""


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--levels", default="4,50,200,500,1000", help="concurrency, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=15, help="measured window per level")
    parser.add_argument("--settle", type=float, default=2, help="after the first run ends")
    parser.add_argument("--call-seconds", type=float, default=10, help="each model call's length")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds per token")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated")
    parsed = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset not found (Debian: apt-get install util-linux)")
    return parsed


def main() -> None:
    parsed = options()
    levels = [int(level) for level in parsed.levels.split(",")]
    # The measured worker gets CPU 0 to itself; this script, the model and the servers share CPU 1.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    with rendered_with_servers() as (work, project, postgres, redis_server):
        redis = Redis.from_url(redis_server.url, client_name="bench")
        servers_on_load_cpu(postgres, redis)
        model_port = free_port()
        command = [venv_python(project), str(BASELINE_DIR / "benchmark_streams_model.py")]
        command += ["--port", str(model_port), "--interval", str(parsed.interval)]
        command += ["--seconds", str(parsed.call_seconds), "--tool-calls", "2"]
        model = Process(project, command, {}, work / "model.log")
        model.start()
        try:
            model_url = f"http://127.0.0.1:{model_port}/v1"
            bench = prepared(
                work, project, postgres, redis, redis_server.url, parsed, levels, model_url
            )
            rows = []
            for level in levels:
                for side in (side for side in SIDES if side in parsed.sides.split(",")):
                    rows.append(bench.level(side, level))
                    # Each row as it is measured: a level that fails keeps those before it.
                    print(table(rows)[-1], file=sys.stderr)
        finally:
            model.stop()
    print(
        f"## {datetime.now(UTC):%Y-%m-%d}: model calls of {parsed.call_seconds:g} s, 3 per run, "
        f"a {parsed.seconds:g} s window per level\n"
    )
    for line in table(rows):
        print(line)


def prepared(
    work: Path,
    project: Any,
    postgres: Any,
    redis: Redis,
    redis_url: str,
    parsed: argparse.Namespace,
    levels: list[int],
    model_url: str,
) -> SlowBench:
    """A migrated database, a config of ours per level, the baseline's environment."""
    _, env = migrated_env(project, work, postgres.url, redis_url)
    configs = {}
    for level in levels:
        overrides: dict[str, dict[str, Any]] = {
            **UNREACHED_LIMIT,
            # A free loopback port: another project's worker may hold 9101.
            "metrics": {"worker_host": "127.0.0.1", "worker_port": free_port()},
            "llm": {"provider": "openai", "base_url": model_url, "model": "slow"},
            "worker": {"concurrency": level},
        }
        configs[level] = config_file(project, work / f"worker-{level}.yaml", overrides)
    (work / "tmp").mkdir()
    env = {**env, "TMPDIR": str(work / "tmp"), "OPENAI_API_KEY": "unused"}
    baseline_env = {
        **env,
        "PYTHONPATH": str(BASELINE_DIR),
        "BASELINE_DATABASE_URL": postgres.url,
        "BASELINE_REDIS_URL": redis_url,
        "BASELINE_SYSTEM_PROMPT": "",
    }
    bench = SlowBench(project, work, postgres, redis, env, baseline_env, parsed)
    bench.configs, bench.model_url = configs, model_url
    bench.completion_tokens = RUN_CALLS * round(parsed.call_seconds / parsed.interval)
    return bench


def table(rows: list[Level]) -> list[str]:
    baseline = {row.concurrency: row.rate for row in rows if row.side == "baseline"}
    lines = [
        "| concurrency | worker | held at once, mean / most | runs/s | vs baseline | errors "
        "| CPU | memory per held run | PostgreSQL connections open / in use (most) "
        "| Redis connections | added delay per model step p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        theirs = baseline.get(row.concurrency)
        ratio = f"{row.rate / theirs:.2f}" if row.side == "ours" and theirs else ""
        lines.append(
            f"| {row.concurrency} | {row.side} | {row.held:.0f} / {row.held_max} "
            f"| {row.rate:.2f} | {ratio} | {row.errors} | {row.cpu:.0%} "
            f"| {row.mb_per_run * 1024:.0f} KB | {row.pg_open} / {row.pg_busy} | {row.redis} "
            f"| {row.delay_ms[0]:.0f} / {row.delay_ms[1]:.0f} ms |"
        )
    return lines


if __name__ == "__main__":
    main()

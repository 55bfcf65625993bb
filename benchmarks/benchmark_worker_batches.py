"""The batches of runs benchmarks/benchmark_worker.py drains, and the checks of what they wrote."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from benchmarks.benchmark_api import pinned, resident_mb, venv_python
from tests.harness.api import Process
from tests.harness.postgres_server import PostgresServer
from tests.project import Project

CONTENT = "/tool current_time\n/tool current_time"
EVENTS = "running,tool_call,tool_result,tool_call,tool_result,done"
QUEUE = "agent:runs"  # app.core.queue.QUEUE_NAME
WARM_UP_RUNS = 200
# Runs queued beyond what the window should take, so that the queue does not run dry.
# (The start is noticed, and the database counted, up to a second late when PostgreSQL is busy.)
MARGIN = 1.5
SLACK_SECONDS = 2.0
WAIT_SECONDS = 300.0
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Window:
    rate: float  # runs per second
    cpu: float  # the share of one core the worker used
    resident_mb: float


@dataclass(frozen=True)
class Sample:
    at: float
    succeeded: int
    cpu_seconds: float


@dataclass
class Bench:
    """The project, its servers, and the two workers' environments."""

    project: Project
    work: Path
    postgres: PostgresServer
    redis: Redis
    env: dict[str, str]
    baseline_env: dict[str, str]
    options: argparse.Namespace
    # Each run's tokens ("prompt/completion") seen in any batch: one value, or the sides differ.
    tokens: set[str] = field(default_factory=set)
    batches: int = 0

    def worker(self, side: str) -> Process:
        python = venv_python(self.project)
        log = self.work / f"{side}.log"
        if side == "ours":
            return Process(self.project, [python, "-m", "app.worker"], self.env, log)
        command = [python, "-m", "benchmark_worker_baseline", "work"]
        return Process(self.project, command, self.baseline_env, log)

    def batch(self, side: str, count: int) -> str:
        """Queue count runs of a new owner; return the owner."""
        self.batches += 1
        owner = f"{side}-{self.batches}"
        python = venv_python(self.project)
        command = [python, "-m", "benchmark_worker_baseline", "queue", str(count), owner, CONTENT]
        self.project.run(*command, env=self.baseline_env)
        return owner

    def warm_up(self, side: str) -> float:
        """Drain a small batch; return its rate, first completion to last."""
        owner = self.batch(side, WARM_UP_RUNS)
        worker = self.worker(side)
        worker.start()
        pinned(worker)
        try:
            self.drained(worker, owner)
        finally:
            worker.stop()
        self.check(owner, WARM_UP_RUNS)
        span = self.query(
            f"SELECT extract(epoch FROM max(finished_at) - min(finished_at)) FROM runs"
            f" WHERE owner = '{owner}'"
        )
        rate = (WARM_UP_RUNS - 1) / float(span)
        print(f"{owner}: warm-up, {WARM_UP_RUNS} runs at {rate:.1f} runs/s", file=sys.stderr)
        return rate

    def measure(self, side: str, rate: float) -> Window:
        """A batch sized for the window at about `rate`, drained; the window's figures. A
        batch the worker emptied before the window's end is measured again, twice as big."""
        seconds = self.options.skip + self.options.seconds + SLACK_SECONDS
        for _ in range(3):
            count = self.options.runs or math.ceil(rate * seconds * MARGIN)
            if window := self.window(side, count):
                return window
            if self.options.runs:
                break
            rate *= 2
        raise SystemExit(f"{side}: the queue ran dry within the window; raise --runs")

    def window(self, side: str, count: int) -> Window | None:
        """Drain a batch of count runs; None if the queue ran dry before the window's end."""
        owner = self.batch(side, count)
        worker = self.worker(side)
        worker.start()
        pinned(worker)
        try:
            self.started(worker, count)
            time.sleep(self.options.skip)
            first = self.sample(worker, owner)
            time.sleep(self.options.seconds)
            last = self.sample(worker, owner)
            left = int(self.redis.llen(QUEUE))
            print(f"{owner}: {count} runs, {last.succeeded - first.succeeded} in the window,"
                  f" {left} still queued", file=sys.stderr)  # fmt: skip
            memory = resident(worker)
            self.drained(worker, owner)
        finally:
            worker.stop()
        self.check(owner, count)
        if not left:
            return None
        seconds = last.at - first.at
        return Window(
            (last.succeeded - first.succeeded) / seconds,
            (last.cpu_seconds - first.cpu_seconds) / seconds,
            memory,
        )

    def started(self, worker: Process, count: int) -> None:
        """Wait until the worker has taken its first message."""
        self.wait(worker, lambda: int(self.redis.llen(QUEUE)) < count, "took no run")

    def drained(self, worker: Process, owner: str) -> None:
        """Wait until no run of the owner is queued or running."""
        query = (
            f"SELECT count(*) FROM runs WHERE owner = '{owner}' AND status IN ('queued', 'running')"
        )
        self.wait(worker, lambda: self.query(query) == "0", "left runs unfinished")

    def wait(self, worker: Process, done: Callable[[], bool], failure: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done():
            assert worker.popen is not None
            if worker.popen.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{worker.args} {failure}:\n{worker.output()[-3000:]}")
            time.sleep(POLL_SECONDS)

    def sample(self, worker: Process, owner: str) -> Sample:
        succeeded = self.query(
            f"SELECT count(*) FROM runs WHERE owner = '{owner}' AND status = 'succeeded'"
        )
        return Sample(time.monotonic(), int(succeeded), cpu_seconds(worker))

    def check(self, owner: str, count: int) -> None:
        """Every run of the batch ended succeeded, with exactly the rows expected of it."""
        total, good, tokens = self.query(CHECK.format(owner=owner, events=EVENTS)).split("|")
        self.tokens.update(tokens.split())
        if int(total) != count or int(good) != count or len(self.tokens) != 1:
            raise SystemExit(
                f"{owner}: {good} of {total} runs ({count} queued) ended as expected;"
                f" tokens per run seen: {sorted(self.tokens)}"
            )

    def query(self, sql: str) -> str:
        return self.postgres.query(sql)


# total | runs as expected | each distinct "prompt/completion" tokens of a run
CHECK = """
WITH r AS (SELECT * FROM runs WHERE owner = '{owner}'),
m AS (
    SELECT run_id, count(*) FILTER (WHERE role = 'assistant') AS assistant,
           count(*) FILTER (WHERE role = 'tool' AND content NOT LIKE 'error%') AS tool,
           count(*) AS messages, sum(prompt_tokens) AS prompt,
           sum(completion_tokens) AS completion
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
             AND m.prompt = r.prompt_tokens AND m.completion = r.completion_tokens
             AND e.names = '{events}'
       ),
       string_agg(DISTINCT r.prompt_tokens || '/' || r.completion_tokens, ' ')
FROM r LEFT JOIN m ON m.run_id = r.id LEFT JOIN e ON e.run_id = r.id
"""


def cpu_seconds(process: Process) -> float:
    """User and system CPU time the process has used so far (/proc/<pid>/stat)."""
    assert process.popen is not None
    fields = Path(f"/proc/{process.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident(process: Process) -> float:
    assert process.popen is not None
    return resident_mb(process.popen.pid)

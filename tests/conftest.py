"""Test tiers by directory: render, quality, boot, update, compose, swarm (and the harness
under boot).

Select a tier with `-m render`, `-m quality`, `-m boot`, `-m update`, `-m compose` or
`-m swarm`; the default runs all, in two lanes side by side (pytest-xdist, `-n 2 --dist
loadgroup` in pyproject.toml): one for the tiers that drive the Docker engine, one for those that
run on the host. Each lane is one worker process, so a session fixture (a rendered image, booted
servers) is built once, in the lane that uses it. Pass `-n 0` to run in one process.
"""

import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import pytest

# Real PostgreSQL and Redis servers, for the tiers that run a project's code (boot, update).
pytest_plugins = ["tests.harness.fixtures"]

# The rendered projects live in temporary directories, and every api, worker, alembic and
# pytest process the tests start in one imports the same packages: let the first write their
# bytecode for the others. With PYTHONDONTWRITEBYTECODE set (as some machines' environments
# do), each process compiled them all again (docs/performance.md). A step that must not leave
# __pycache__ behind sets it itself (tests/update). The tests' own processes write none: they
# import the template's files (scripts/init_secrets.py), and a __pycache__ beside them would
# be copied into every project rendered after.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = True

TIERS = {
    "render": "render",
    "quality": "quality",
    "boot": "boot",
    "harness": "boot",
    "lab": "compose",
    "update": "update",
    "compose": "compose",
    "swarm": "swarm",
}

# Two lanes for two cores (docs/performance.md has the durations behind the split). The engine tiers
# stay in one lane: swarm mode and the compose stacks share the one engine, and the stand-in
# images are built once. The host lane holds the rest; each run prints both lanes' times.
LANES = {
    "render": "host",
    "quality": "host",
    "boot": "host",
    "update": "host",
    "compose": "engine",
    "swarm": "engine",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(TIERS[_tier_dir(item.nodeid)])


def _tier_dir(nodeid: str) -> str:
    parts = PurePosixPath(nodeid.split("::")[0]).parts
    if len(parts) < 3 or parts[0] != "tests" or parts[1] not in TIERS:
        raise pytest.UsageError(f"{nodeid}: put tests in one of tests/{{{','.join(TIERS)}}}/")
    return parts[1]


def _lane_of(nodeid: str) -> str:
    return LANES[TIERS[_tier_dir(nodeid)]]


# How many workers xdist starts: the lanes are dealt once that many have collected.
_WORKERS = pytest.StashKey[int]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Sequence[Any]) -> None:
    config.stash[_WORKERS] = len(specs)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> "LaneScheduling | None":
    # `--dist loadgroup` is the switch: xdist 3.8 accepts only its own --dist names. Its
    # xdist_group marks would say the same as our lanes, but xdist marks a group by rewriting
    # the node id, which pytest 9.2 ignores (pytest-dev/pytest-xdist#1386, still open): the
    # lanes split silently, and two workers drove one booted stack at once.
    if config.getoption("dist") != "loadgroup":
        return None
    return LaneScheduling(config, config.stash[_WORKERS])


class LaneScheduling:
    """Each lane whole on one worker, in collection order: xdist's public scheduler protocol
    (`xdist.scheduler.Scheduling`), answering its `pytest_xdist_make_scheduler` hook.

    All of a worker's tests are sent at once, with its shutdown behind them, so a worker runs
    its lane to the end and stops. A worker that crashes leaves the rest of its lane to the one
    xdist starts in its place.
    """

    def __init__(self, config: pytest.Config, expected: int) -> None:
        self.config = config
        self.expected = expected  # workers xdist starts; the lanes are dealt once all collected
        self.collections: dict[Any, list[str]] = {}
        self.pending: dict[Any, list[int]] = {}  # worker -> indices sent and not yet reported
        self.fresh: list[Any] = []  # workers that have no tests yet
        self.orphans: list[list[int]] = []  # what crashed workers left, one entry per worker
        self.collection: list[str] | None = None
        self.aborted = False

    @property
    def nodes(self) -> list[Any]:
        return list(self.pending)

    @property
    def collection_is_completed(self) -> bool:
        return self.collection is not None or len(self.collections) >= self.expected

    @property
    def tests_finished(self) -> bool:
        if self.aborted:
            return True
        return self.collection is not None and not self.has_pending

    @property
    def has_pending(self) -> bool:
        return bool(self.orphans) or any(self.pending.values())

    def add_node(self, node: Any) -> None:
        self.pending[node] = []
        self.fresh.append(node)

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        self.collections[node] = list(collection)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        self.pending[node].remove(item_index)

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError("a lane's tests are not re-run one by one")

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError("a lane's tests are never taken from its worker")

    def remove_node(self, node: Any) -> str | None:
        left = self.pending.pop(node)
        if self.collection is None:
            self.collections.pop(node, None)  # the lanes wait for the worker replacing it
        if node in self.fresh:
            self.fresh.remove(node)
        if not left or self.collection is None:
            return None
        # The first test not reported is the one running when the worker died; the rest wait
        # for a new worker.
        if left[1:]:
            self.orphans.append(left[1:])
        return self.collection[left[0]]

    def schedule(self) -> None:
        if self.collection is None:
            self._deal()
        else:
            self._rehome()

    def _deal(self) -> None:
        collections = list(self.collections.values())
        first = collections[0]
        for other in collections[1:]:
            if other != first:
                self._abort(first, other)
                return
        self.collection = first
        lanes: dict[str, list[int]] = {}
        for index, nodeid in enumerate(first):
            lanes.setdefault(_lane_of(nodeid), []).append(index)
        workers = list(self.fresh)
        # More lanes than workers (-n 1): a worker takes several, one after the other.
        shares: list[list[int]] = [[] for _ in workers]
        for position, lane in enumerate(sorted(lanes)):
            shares[position % len(workers)].extend(lanes[lane])
        for worker, share in zip(workers, shares, strict=True):
            self._send(worker, share)

    def _rehome(self) -> None:
        """Hand what crashed workers left to the workers xdist started in their place."""
        assert self.collection is not None
        for worker in [w for w in self.fresh if w in self.collections]:
            if self.collections[worker] != self.collection:
                self._abort(self.collection, self.collections[worker])
                return
            if self.orphans:
                self._send(worker, self.orphans.pop(0))

    def _send(self, worker: Any, indices: list[int]) -> None:
        self.fresh.remove(worker)
        if indices:
            self.pending[worker] = sorted(indices)
            worker.send_runtest_some(self.pending[worker])
        worker.shutdown()

    def _abort(self, first: list[str], other: list[str]) -> None:
        """Workers that collected different tests: report it as a collection error, run none."""
        differing = next((a, b) for a, b in itertools.zip_longest(first, other) if a != b)
        report = pytest.CollectReport(
            nodeid="",
            outcome="failed",
            longrepr=f"the workers collected different tests: {differing[0]!r} vs {differing[1]!r}",
            result=[],
        )
        self.config.hook.pytest_collectreport(report=report)
        self.aborted = True
        for worker in self.fresh:
            worker.shutdown()


# Each lane's wall time, printed after the slowest steps: which lane ends last is where a cut
# pays. A worker notes the lanes it ran and its time since it loaded this file (its start);
# the controller prints what they sent.
_started = time.monotonic()
_lanes_run: set[str] = set()
_lane_seconds: dict[str, float] = {}


def pytest_runtest_logstart(nodeid: str) -> None:
    _lanes_run.add(_lane_of(nodeid))


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None and _lanes_run:
        output["lanes"] = " + ".join(sorted(_lanes_run))
        output["seconds"] = time.monotonic() - _started


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    if "lanes" in output:
        _lane_seconds[output["lanes"]] = output["seconds"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _lane_seconds:
        terminalreporter.write_sep("=", "lanes: wall time of each worker")
        for lanes, seconds in sorted(_lane_seconds.items(), key=lambda lane: -lane[1]):
            terminalreporter.write_line(f"{seconds:8.1f}s  {lanes}")

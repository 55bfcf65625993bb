"""Test tiers by directory: render, quality, boot, update, compose, swarm (and the harness
under boot).

Select a tier with `-m render`, `-m quality`, `-m boot`, `-m update`, `-m compose` or
`-m swarm`; the default runs all, in two lanes side by side (pytest-xdist, `-n 2 --dist
loadgroup` in pyproject.toml): one for the tiers that drive the Docker engine, one for those that
run on the host. Each lane is one worker process, so a session fixture (a rendered image, booted
servers) is built once, in the lane that uses it. Pass `-n 0` to run in one process.
"""

import time
from pathlib import PurePosixPath
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# Real PostgreSQL and Redis servers, for the tiers that run a project's code (boot, update).
pytest_plugins = ["tests.harness.fixtures"]

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


class _LaneScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
    """xdist's scope scheduling with one scope per lane: each lane goes whole to one worker."""

    def _split_scope(self, nodeid: str) -> str:
        return _lane_of(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    # `--dist loadgroup` with xdist_group marks would say the same, but pytest-xdist 3.8 marks a
    # group by rewriting the node id, which pytest 9.2 ignores (pytest-dev/pytest-xdist#1386):
    # the lanes split silently, and two workers drove one booted stack at once.
    if config.getoption("dist") != "loadgroup":
        return None
    return _LaneScheduling(config, log)


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

"""Test tiers by directory: render, quality, boot, update, compose, swarm (and the harness
under boot).

Select a tier with `-m render`, `-m quality`, `-m boot`, `-m update`, `-m compose` or
`-m swarm`; the default runs all, in two lanes side by side (pytest-xdist, `-n 2 --dist
loadgroup` in pyproject.toml): one for the tiers that drive the Docker engine, one for those that
run on the host. Each lane is one worker process, so a session fixture (a rendered image, booted
servers) is built once, in the lane that uses it. Pass `-n 0` to run in one process.
"""

from pathlib import Path

import pytest

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
# images are built once per lane that needs them.
LANES = {
    "render": "host",
    "quality": "host",
    "boot": "host",
    "update": "host",
    "compose": "engine",
    "swarm": "engine",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests_dir).parts
        # tests/lab/ (the stand-in image checks) needs the engine, like the compose tier it serves.
        tier = TIERS.get(parts[0])
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: put tests in one of {sorted(TIERS)}")
        item.add_marker(tier)
        item.add_marker(pytest.mark.xdist_group(LANES[tier]))

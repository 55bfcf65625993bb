"""Test tiers by directory: render, quality, boot, update, compose, swarm (and the harness
under boot).

Select a tier with `-m render`, `-m quality`, `-m boot`, `-m update`, `-m compose` or
`-m swarm`; the default runs all.
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
    "update": "update",
    "compose": "compose",
    "swarm": "swarm",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests_dir).parts
        # The stand-in image checks need the engine, like the compose tier they serve.
        tier = "compose" if parts[-1] == "test_images.py" else TIERS.get(parts[0])
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: put tests in one of {sorted(TIERS)}")
        item.add_marker(tier)

"""Test tiers by directory: render, quality, boot (and the harness that boot relies on).

Select a tier with `-m render`, `-m quality` or `-m boot`; the default runs them all.
"""

from pathlib import Path

import pytest

TIERS = {"render": "render", "quality": "quality", "boot": "boot", "harness": "boot"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        tier_dir = item.path.relative_to(tests_dir).parts[0]
        tier = TIERS.get(tier_dir)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: put tests in one of {sorted(TIERS)}")
        item.add_marker(tier)

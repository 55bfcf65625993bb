"""The compose tier's fixtures: rendered projects with their images, and stacks of them."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.combinations import for_tier
from tests.harness import docker as lab
from tests.harness.stack import Rendered, Stack, build_images, new_stack, running_stack
from tests.project import render

# The combinations the compose tier runs (tests/combinations.py says why these).
VARIANTS = for_tier("compose")
# The later variant differs from the first in its Redis flavor (another image, CLI, data
# directory and entrypoint) and its project's name. A test in which neither can matter runs on
# the first only, saying why where it is used: on the second it repeated the same steps on
# the same code (docs/performance.md has what that cost).
FIRST_VARIANT_ONLY = pytest.mark.parametrize("rendered", VARIANTS[:1], indirect=True)


@pytest.fixture(scope="session", params=VARIANTS)
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rendered]:
    answers: dict[str, Any] = request.param
    project = render(tmp_path_factory.mktemp("compose"), answers)
    images = build_images(project, answers)
    try:
        yield Rendered(project, images)
    finally:
        lab.docker("image", "rm", "-f", images.api, images.test, check=False)


@pytest.fixture(scope="session")
def shared_stack(rendered: Rendered) -> Iterator[Stack]:
    """One running stack per variant for the modules that only read it or put back what they
    change (test_stack, test_secrets, test_hardening): each saves an `up --wait` and a `down`
    per variant (durations in docs/performance.md). A module that scales, stops or kills a service
    keeps its own `stack`; a test that needs a new one uses `fresh_stack`."""
    with running_stack(rendered) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(rendered: Rendered) -> Iterator[Stack]:
    """A running stack shared by the read-mostly tests of a module."""
    with running_stack(rendered) as stack:
        yield stack


@pytest.fixture
def fresh_stack(rendered: Rendered) -> Iterator[Stack]:
    """A stack of the test's own (not started), torn down with its volumes afterwards."""
    stack = new_stack(rendered)
    try:
        yield stack
    finally:
        stack.down()

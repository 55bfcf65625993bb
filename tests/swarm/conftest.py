"""The swarm tier's fixtures: the default project with the swarm target, its images, and one stack
deployed with its deploy/stack.yaml on a single-node swarm, shared by the module (a deploy takes
half a minute)."""

from collections.abc import Iterator

import pytest

from tests.harness import docker as lab
from tests.harness.stack import Images, build_images
from tests.harness.swarm import SwarmStack, swarm_mode
from tests.project import Project, render


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    # The default answers but for deploy_targets: the default project has no stack file.
    return render(tmp_path_factory.mktemp("swarm"), {"deploy_targets": "compose+swarm"})


@pytest.fixture(scope="session")
def images(project: Project) -> Iterator[Images]:
    images = build_images(project, {})
    try:
        yield images
    finally:
        # The rolling update test builds a second api image beside the first.
        rebuilt = f"{images.api}-rebuilt"
        lab.docker("image", "rm", "-f", images.api, rebuilt, images.test, check=False)


@pytest.fixture(scope="module")
def swarm(images: Images) -> Iterator[None]:
    with swarm_mode():
        yield


@pytest.fixture(scope="module")
def stack(project: Project, images: Images, swarm: None) -> Iterator[SwarmStack]:
    stack = SwarmStack(project, images)
    try:
        stack.deploy()
        stack.wait_converged()
        yield stack
    finally:
        stack.purge()

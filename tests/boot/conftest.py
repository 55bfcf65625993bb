"""The boot tier's shared fixture: the default project, rendered and installed once."""

import pytest

from tests.project import Project, install, render


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default combination, rendered and installed once for the modules that share it."""
    return install(render(tmp_path_factory.mktemp("default") / "out", {}))

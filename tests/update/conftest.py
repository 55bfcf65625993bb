"""The update tier's fixtures: git and cookiecutter set up offline, and the tagged template."""

import os
import shutil
from pathlib import Path

import pytest

from tests.harness.environment import need
from tests.project import ROOT
from tests.project import run_command as run
from tests.update.releases import (
    BEFORE_TARGETS,
    GIT_IDENTITY,
    PREVIOUS_MAIN_TAG,
    TemplateRepo,
    release_three,
    release_two,
    tag_previous_main,
    without_deploy_targets,
)


@pytest.fixture(scope="session")
def tools_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """git, cruft and cookiecutter with a fixed identity and their own cookiecutter config."""
    need(shutil.which("git") is not None, "git is not installed (apt-get install git)")
    home = tmp_path_factory.mktemp("cookiecutter-home")
    config = home / "config.yaml"
    # cookiecutter clones templates into cookiecutters_dir: keep it out of the user's home.
    config.write_text(
        f"cookiecutters_dir: {home / 'templates'}\nreplay_dir: {home / 'replay'}\n",
        encoding="utf-8",
    )
    return {**os.environ, **GIT_IDENTITY, "COOKIECUTTER_CONFIG": str(config)}


def copy_checkout(path: Path, env: dict[str, str]) -> None:
    """Copy the files git knows of in this checkout (committed or not), without ignored ones."""
    listed = run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT, env=env
    )
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.fixture(scope="session")
def template_repo(
    tmp_path_factory: pytest.TempPathFactory, tools_env: dict[str, str]
) -> TemplateRepo:
    path = tmp_path_factory.mktemp("template") / "ai-agent-api-template"
    repo = TemplateRepo(path, tools_env)
    copy_checkout(path, tools_env)
    repo.git("init", "-q", "-b", "main")
    repo.release(BEFORE_TARGETS, without_deploy_targets, root=True)
    copy_checkout(path, tools_env)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "Template as checked out")
    repo.git("tag", "v1.0.0")
    repo.release("v2.0.0", release_two)
    repo.release("v3.0.0", release_three)
    return repo


@pytest.fixture(scope="session")
def previous_main(template_repo: TemplateRepo) -> str:
    """The tag of the previous main in the template's copy (fails under CI when it is missing)."""
    tag_previous_main(template_repo)
    return PREVIOUS_MAIN_TAG

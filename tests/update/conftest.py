"""A git copy of the template with three tagged versions, and projects made from it by cruft.

Offline, as in the team's own setup: the template is a local git repository reached through a
file:// URL, cruft and cookiecutter clone it with the machine's git, nothing goes to a network.

- v1.0.0: the template as it is in this checkout.
- v2.0.0: a template release (a changed healthcheck interval in compose, a new Dockerfile
  line, a new script, a new setting with its default).
- v3.0.0: v2.0.0 plus a change to the very line a user edits (llm.history_limit).
"""

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.environment import need
from tests.project import ROOT, Project
from tests.project import run_command as run

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}
SLUG_DIR = "{{cookiecutter.project_slug}}"

# Template release v2.0.0. Each edit is (file in the generated project, old text, new text).
API_HEALTHCHECK = "      interval: 5s\n      timeout: 5s\n      retries: 3\n"
RELEASE_EDITS = [
    ("compose.yaml", API_HEALTHCHECK, API_HEALTHCHECK.replace("interval: 5s", "interval: 10s")),
    (
        "config/config.yaml",
        "  max_concurrent_per_key: 4\n",
        "  max_concurrent_per_key: 4\n  # Days an unused upload is kept.\n  retention_days: 30\n",
    ),
    (
        "app/core/config.py",
        "    max_concurrent_per_key: PositiveInt = 4\n",
        "    max_concurrent_per_key: PositiveInt = 4\n    retention_days: PositiveInt = 30\n",
    ),
]
DOCKERFILE_LINE = 'LABEL org.opencontainers.image.vendor="Platform team"\n'
NEW_SCRIPT = "scripts/release-notes"
NEW_SCRIPT_TEXT = (
    '#!/usr/bin/env bash\n# What changed in the template.\nset -euo pipefail\necho "v2"\n'
)
# Template release v3.0.0: the line a user also edits.
HISTORY_LINE = "  history_limit: 50\n"
TEMPLATE_HISTORY_LINE = "  history_limit: 100\n"
USER_HISTORY_LINE = "  history_limit: 20\n"


def tool(name: str) -> str:
    """A command installed in the template's venv (cruft, cookiecutter)."""
    path = Path(sys.executable).with_name(name)
    assert path.exists(), f"{name} is not in the template's venv: uv sync --locked"
    return str(path)


def replace_once(path: Path, old: str, new: str) -> None:
    """Edit a file; fail loudly when the anchor is gone (the template changed under the test)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path}: expected exactly one {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@dataclass(frozen=True)
class TemplateRepo:
    """The template in a git repository of its own, with a tag per release."""

    path: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        return run("git", *args, cwd=self.path, env=self.env).stdout

    def release(self, tag: str, change: Callable[[Path], None]) -> None:
        change(self.path / SLUG_DIR)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"Release {tag}")
        self.git("tag", tag)


def _release_two(project: Path) -> None:
    for name, old, new in RELEASE_EDITS:
        replace_once(project / name, old, new)
    with (project / "Dockerfile").open("a", encoding="utf-8") as dockerfile:
        dockerfile.write(DOCKERFILE_LINE)
    script = project / NEW_SCRIPT
    script.write_text(NEW_SCRIPT_TEXT, encoding="utf-8")
    script.chmod(0o755)


def _release_three(project: Path) -> None:
    replace_once(project / "config" / "config.yaml", HISTORY_LINE, TEMPLATE_HISTORY_LINE)


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


@pytest.fixture(scope="session")
def template_repo(
    tmp_path_factory: pytest.TempPathFactory, tools_env: dict[str, str]
) -> TemplateRepo:
    path = tmp_path_factory.mktemp("template") / "ai-agent-api-template"
    # The files git knows of in this checkout (committed or not), without ignored ones.
    listed = run(
        "git",
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        cwd=ROOT,
        env=tools_env,
    )
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    repo = TemplateRepo(path, tools_env)
    repo.git("init", "-q", "-b", "main")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "Template as checked out")
    repo.git("tag", "v1.0.0")
    repo.release("v2.0.0", _release_two)
    repo.release("v3.0.0", _release_three)
    return repo


def cruft_create(repo: TemplateRepo, output: Path, tag: str) -> tuple[Project, str]:
    """`cruft create --checkout <tag>`, then commit the project as its team would."""
    output.mkdir(parents=True)
    created = run(
        tool("cruft"), "create", "--no-input", "--checkout", tag, repo.url, cwd=output, env=repo.env
    )
    project = Project(output / "ai_agent_api", {})
    run("git", "init", "-q", "-b", "main", cwd=project.path, env=repo.env)
    run("git", "add", "-A", cwd=project.path, env=repo.env)
    run("git", "commit", "-q", "-m", "Generated", cwd=project.path, env=repo.env)
    return project, created.stdout


def commit_all(project: Project, env: dict[str, str], message: str) -> None:
    run("git", "add", "-A", cwd=project.path, env=env)
    run("git", "commit", "-q", "-m", message, cwd=project.path, env=env)

"""A git copy of the template with tagged versions, and projects made from it by cruft.

Offline, as in the team's own setup: the template is a local git repository reached through a
file:// URL, cruft and cookiecutter clone it with the machine's git, nothing goes to a network.

- v0.9.0: this checkout without the deploy_targets answer, as the template was before it
  existed: every project got the Swarm stack and the Helm chart.
- v1.0.0: the template as it is in this checkout.
- v2.0.0: a template release (a changed healthcheck interval in compose, a new Dockerfile
  line, a new script, a new setting with its default).
- v3.0.0: v2.0.0 plus a change to the very line a user edits (llm.history_limit).
- previous-main: the template as main was before this checkout's changes (PREVIOUS_MAIN),
  the release the update tests make their projects from, so `cruft update` to v2.0.0 or
  v3.0.0 carries whatever this checkout changed (moved modules, new migrations) as well.
"""

import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.harness.environment import need, venv_tool
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
# The healthcheck timings the api and the worker share (a YAML anchor in compose.yaml).
API_HEALTHCHECK = "x-app-healthcheck: &app-healthcheck\n  interval: 5s\n"
RELEASE_EDITS = [
    ("compose.yaml", API_HEALTHCHECK, API_HEALTHCHECK.replace("interval: 5s", "interval: 10s")),
    (
        "config/config.yaml",
        "  max_concurrent_per_key: 4\n",
        "  max_concurrent_per_key: 4\n  # Days an unused upload is kept.\n  retention_days: 30\n",
    ),
    (
        "app/config/sections.py",
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

    def release(self, tag: str, change: Callable[[Path], None], *, root: bool = False) -> None:
        """Commit and tag a change of the generated project (or, with root, of the template)."""
        change(self.path if root else self.path / SLUG_DIR)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"Release {tag}")
        self.git("tag", tag)


# The commit of main that the projects of the update tests are generated from: what the teams
# using the template last took. Move it to main's head just before a release is tagged or a
# refactor of the generated project lands (modules moved, a migration added), so the tests prove
# that a project of the main before it takes the change with `cruft update`. team.py's edits and
# test_update.py's OLD_ROW are written against this commit's files and schema: they cannot
# break as the template changes, only when this moves (check them then).
PREVIOUS_MAIN = "5e19d11"
PREVIOUS_MAIN_TAG = "previous-main"
BEFORE_TARGETS = "v0.9.0"
EVERY_TARGET = "compose+swarm+helm"


def without_lines(path: Path, start: str, count: int) -> None:
    """Drop the lines that start so; fail loudly when there are not that many."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(start)]
    assert len(lines) - len(kept) == count, f"{path}: expected {count} lines starting {start!r}"
    path.write_text("".join(kept), encoding="utf-8")


def without_deploy_targets(template: Path) -> None:
    """The template before the deploy_targets answer: no question, every target's files."""
    questions_file = template / "cookiecutter.json"
    questions = json.loads(questions_file.read_text(encoding="utf-8"))
    del questions["deploy_targets"], questions["__prompts__"]["deploy_targets"]
    questions_file.write_text(json.dumps(questions, indent=2, ensure_ascii=False) + "\n")
    without_lines(template / "hooks" / "pre_gen_project.py", '    "deploy_targets": ', 2)
    without_lines(template / "hooks" / "post_gen_project.py", '    ("deploy_targets", ', 2)
    for path in (template / SLUG_DIR).rglob("*"):
        if path.is_file() and path.suffix in {".md", ".yaml", ".yml"}:
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace("cookiecutter.deploy_targets", repr(EVERY_TARGET)))


def release_two(project: Path) -> None:
    for name, old, new in RELEASE_EDITS:
        replace_once(project / name, old, new)
    with (project / "Dockerfile").open("a", encoding="utf-8") as dockerfile:
        dockerfile.write(DOCKERFILE_LINE)
    script = project / NEW_SCRIPT
    script.write_text(NEW_SCRIPT_TEXT, encoding="utf-8")
    script.chmod(0o755)


def release_three(project: Path) -> None:
    replace_once(project / "config" / "config.yaml", HISTORY_LINE, TEMPLATE_HISTORY_LINE)


def tag_previous_main(repo: TemplateRepo) -> None:
    """Tag the template at PREVIOUS_MAIN, as this checkout's history has it, in the copy.

    A commit of its own beside the releases (cruft compares two renders, not histories), built
    with a scratch index so that the copy's work tree (main, v3.0.0) stays as it is.
    """
    known = run(
        "git", "cat-file", "-e", f"{PREVIOUS_MAIN}^{{commit}}", cwd=ROOT, env=repo.env, check=False
    )
    need(
        known.returncode == 0,
        f"commit {PREVIOUS_MAIN} is not in this clone's history (git fetch --unshallow)",
    )
    archive = repo.path.parent / "previous-main.tar"
    run("git", "archive", "-o", str(archive), PREVIOUS_MAIN, cwd=ROOT, env=repo.env)
    tree = repo.path.parent / "previous-main"
    with tarfile.open(archive) as files:
        files.extractall(tree, filter="tar")
    index = {**repo.env, "GIT_INDEX_FILE": str(repo.path.parent / "previous-main.index")}
    # -f: every file of the commit, even one its own .gitignore names (it was added with -f).
    run("git", f"--work-tree={tree}", "add", "-A", "-f", cwd=repo.path, env=index)
    written = run("git", "write-tree", cwd=repo.path, env=index).stdout.strip()
    message = f"The template at {PREVIOUS_MAIN}"
    commit = run("git", "commit-tree", written, "-m", message, cwd=repo.path, env=index)
    repo.git("tag", PREVIOUS_MAIN_TAG, commit.stdout.strip())


def cruft_create(repo: TemplateRepo, output: Path, tag: str) -> tuple[Project, str]:
    """`cruft create --checkout <tag>`, then commit the project as its team would."""
    output.mkdir(parents=True)
    created = run(
        venv_tool("cruft"),
        "create",
        "--no-input",
        "--checkout",
        tag,
        repo.url,
        cwd=output,
        env=repo.env,
    )
    project = Project(output / "ai_agent_api", {})
    run("git", "init", "-q", "-b", "main", cwd=project.path, env=repo.env)
    run("git", "add", "-A", cwd=project.path, env=repo.env)
    run("git", "commit", "-q", "-m", "Generated", cwd=project.path, env=repo.env)
    return project, created.stdout


def commit_all(project: Project, env: dict[str, str], message: str) -> None:
    run("git", "add", "-A", cwd=project.path, env=env)
    run("git", "commit", "-q", "-m", message, cwd=project.path, env=env)

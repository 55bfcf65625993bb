"""A project generated before the deploy_targets answer existed, updated with cruft.

cruft gives a question the project was never asked its default (compose), so a plain update
renders the new template without the Swarm stack and the Helm chart and deletes them from the
project. The documented update command answers the question and keeps them.
"""

import json
from pathlib import Path

from tests.harness.environment import venv_tool
from tests.project import Project
from tests.project import run_command as run
from tests.update.releases import BEFORE_TARGETS, EVERY_TARGET, TemplateRepo, cruft_create

# A file of each target, and the page they share.
TARGET_FILES = [
    *("deploy/stack.yaml", "scripts/deploy-stack"),
    *("deploy/helm/Chart.yaml", "deploy/helm/templates/api.yaml"),
    "docs/deploy.md",
]


def update(project: Project, repo: TemplateRepo, *options: str) -> str:
    """`cruft update -y` to v1.0.0, the first release with the answer; its output."""
    result = run(
        venv_tool("cruft"),
        "update",
        "-y",
        "--checkout",
        "v1.0.0",
        *options,
        cwd=project.path,
        env=repo.env,
    )
    return result.stdout + result.stderr


def changes(project: Project, repo: TemplateRepo) -> dict[str, str]:
    status = run("git", "status", "--porcelain", cwd=project.path, env=repo.env).stdout
    return {line[3:]: line[:2].strip() for line in status.splitlines()}


def test_the_documented_update_keeps_the_swarm_stack_and_the_chart(
    template_repo: TemplateRepo, tmp_path: Path
) -> None:
    project, _ = cruft_create(template_repo, tmp_path / "out", BEFORE_TARGETS)
    before = {name: (project.path / name).read_bytes() for name in TARGET_FILES}

    output = update(
        project,
        template_repo,
        "--variables-to-update",
        json.dumps({"deploy_targets": EVERY_TARGET}),
    )

    state = json.loads((project.path / ".cruft.json").read_text(encoding="utf-8"))
    assert {name: (project.path / name).read_bytes() for name in TARGET_FILES} == before
    assert state["context"]["cookiecutter"]["deploy_targets"] == EVERY_TARGET
    assert changes(project, template_repo) == {".cruft.json": "M"}, output
    assert "this render has no" not in output


def test_a_plain_update_names_what_it_leaves_out_and_the_command(
    template_repo: TemplateRepo, tmp_path: Path
) -> None:
    project, _ = cruft_create(template_repo, tmp_path / "out", BEFORE_TARGETS)

    output = update(project, template_repo)

    # What the hook prints during the update, before anything is applied.
    assert (
        "deploy_targets is 'compose': this render has no deploy/stack.yaml, "
        "scripts/deploy-stack, docs/deploy.md, deploy/helm." in output
    )
    assert f"""--variables-to-update '{{"deploy_targets": "{EVERY_TARGET}"}}'""" in output
    # And what git shows afterwards: the deletions, still in HEAD to restore.
    deleted = {name for name, state in changes(project, template_repo).items() if state == "D"}
    assert {"deploy/stack.yaml", "scripts/deploy-stack", "deploy/helm/Chart.yaml"} <= deleted

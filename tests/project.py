"""Render the template and drive the generated project with its own locked tools."""

import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cookiecutter.main import cookiecutter

from tests.harness.environment import env_for_uv, need, python_for, uv_executable

ROOT = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT = 600


@dataclass(frozen=True)
class Project:
    """A rendered project on disk, the answers that produced it, and readers of its files."""

    path: Path
    answers: dict[str, Any]

    @property
    def python_version(self) -> str:
        return str(self.answers.get("python_version", "3.13"))

    def text(self, relative: str) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def load_toml(self, relative: str) -> dict[str, Any]:
        return tomllib.loads(self.text(relative))

    def load_yaml(self, relative: str) -> Any:
        return yaml.safe_load(self.text(relative))

    def env_example_lines(self) -> list[str]:
        return self.text(".env.example").splitlines()

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the project; on failure the error shows its output."""
        return run_command(*args, cwd=self.path, env={**env_for_uv(), **(env or {})}, check=check)

    def uv(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(uv(), *args, **kwargs)


def run_command(
    *args: str, cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; with check, a failure raises with the command's output."""
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def assert_only_passes(pytest_output: str) -> None:
    """pytest's closing line says only "N passed": a skip, xfail or error would show there."""
    summary = pytest_output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \([\d:]+\))?", summary), summary


def uv() -> str:
    path = uv_executable()
    need(path is not None, "uv not found (pip install uv)")
    assert path is not None
    return path


def render(output_dir: Path, answers: dict[str, Any]) -> Project:
    """Render one combination with its hooks, as `cookiecutter --no-input` would."""
    path = cookiecutter(str(ROOT), no_input=True, output_dir=str(output_dir), extra_context=answers)
    return Project(Path(path), answers)


def install(project: Project) -> Project:
    """`uv sync --locked` with the combination's Python; fails if the lock is stale."""
    python = python_for(project.python_version)
    need(python is not None, f"Python {project.python_version} not found (uv python install)")
    assert python is not None
    project.uv("sync", "--locked", "--python", python)
    return project


def project_env(**values: str) -> dict[str, str]:
    """Environment for the project's processes: no inherited app settings, unbuffered output."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "TEST_", "API_", "OPENAI_"))
    }
    return {**inherited, **env_for_uv(), "PYTHONUNBUFFERED": "1", **values}

"""The generated shell scripts: lint-clean, and init-secrets recreates what a clone lacks."""

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.harness.environment import need
from tests.project import Project, render


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    # Every deploy target, so that scripts/deploy-stack is linted too.
    return render(tmp_path_factory.mktemp("scripts"), {"deploy_targets": "compose+swarm+helm"})


def test_scripts_pass_shellcheck(project: Project) -> None:
    shellcheck = shutil.which("shellcheck")
    need(shellcheck is not None, "shellcheck not found (apt-get install shellcheck)")
    assert shellcheck is not None
    scripts = sorted(
        p
        for p in (project.path / "scripts").iterdir()
        if not p.name.startswith(".") and p.suffix != ".py"  # init_secrets.py is Python
    )

    result = subprocess.run(
        [shellcheck, "-x", *map(str, scripts)],
        cwd=project.path / "scripts",
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout
    assert all(p.stat().st_mode & stat.S_IXUSR for p in scripts if p.suffix != ".sh")


def test_init_secrets_recreates_missing_secrets_and_env(project: Project, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(project.path, clone, ignore=shutil.ignore_patterns("secrets", ".env"))
    (clone / "secrets").mkdir(mode=0o700)
    (clone / "secrets" / "api_keys").write_text("kept-key")

    result = subprocess.run(
        [str(clone / "scripts" / "init-secrets")],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    secrets = clone / "secrets"
    assert (secrets / "api_keys").read_text() == "kept-key"
    values = [(secrets / n).read_text() for n in ("postgres_password", "redis_password")]
    assert all(len(v) >= 40 for v in values)
    assert values[0] != values[1]
    keys = ("openai_api_key", "anthropic_api_key", "gemini_api_key")
    assert [(secrets / name).read_text() for name in keys] == ["", "", ""]
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets / "secret_key").stat().st_mode) == 0o640
    env = (clone / ".env").read_text().splitlines()
    assert f"SECRETS_GID={subprocess.check_output(['id', '-g'], text=True).strip()}" in env
    assert stat.S_IMODE((clone / ".env").stat().st_mode) == 0o600

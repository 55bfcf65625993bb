"""scripts/init_secrets.py, the one writer of secrets/ and .env: what it decides on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.render.hooks import EXAMPLE, init_secrets


def test_machine_values_of_a_kept_env_are_not_differences() -> None:
    kept = "ENVIRONMENT=production\nSECRETS_GID=1000\n# API_PORT=1\nAPI_PORT=8000\n"

    assert init_secrets.env_differences(kept, EXAMPLE.replace("POSTGRES_USER=bot\n", "")) == [
        "DATABASE_URL=(missing) in .env, postgresql://bot@localhost:5432/bot from the answers",
        "DATABASE_PASSWORD_FILE=(missing) in .env, secrets/postgres_password from the answers",
    ]


@pytest.mark.parametrize(("rootless", "expected"), [(True, 0), (False, 1000), (None, 1000)])
def test_secrets_gid_is_group_0_only_on_a_rootless_engine(
    rootless: bool | None, expected: int
) -> None:
    assert init_secrets.secrets_gid(rootless, 1000) == expected


# The plain `docker info` output around its Security Options, as Docker 20.10 prints it.
DOCKER_INFO = """cat <<'INFO'
 Security Options:
{options}
 Kernel Version: 6.1.0
INFO"""


def _fake_docker(directory: Path, script: str) -> None:
    docker = directory / "docker"
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (DOCKER_INFO.format(options="  seccomp\n   Profile: default\n  rootless"), True),
        (DOCKER_INFO.format(options="  seccomp\n   Profile: default"), False),
        ("printf 'host:\\n  security:\\n    rootless: true\\n'", True),  # Podman
        ("echo 'Cannot connect to the Docker daemon' >&2; exit 1", None),
    ],
)
def test_engine_mode_comes_from_docker_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, expected: bool | None
) -> None:
    # A stand-in docker CLI with docker info's answer for each kind of engine, found first.
    _fake_docker(tmp_path, script)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")

    assert init_secrets.engine_is_rootless() is expected


def test_engine_mode_is_unknown_without_a_docker_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert init_secrets.engine_is_rootless() is None

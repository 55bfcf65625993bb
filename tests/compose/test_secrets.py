"""Secrets live in files under secrets/ and reach containers as compose secrets, nowhere else."""

import json
import stat

import pytest

from tests.harness import docker as lab
from tests.harness.stack import Stack

SERVICES = ("api", "worker", "migrate", "db", "redis")


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """This module only reads the stack (or puts back what it changes): it shares one."""
    return shared_stack


def _secret_values(stack: Stack) -> dict[str, str]:
    directory = stack.project.path / "secrets"
    return {
        path.name: path.read_text().strip()
        for path in sorted(directory.iterdir())
        if path.read_text().strip()
    }


def test_secret_files_are_private_and_mounted_as_secrets(stack: Stack) -> None:
    directory = stack.project.path / "secrets"
    mounts = {m["Destination"]: m for m in stack.inspect("api")["Mounts"]}

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o007 == 0 for p in directory.iterdir())
    assert mounts["/run/secrets/api_keys"]["Source"] == str(directory / "api_keys")
    assert stack.exec("api", "cat", "/run/secrets/api_keys").stdout.strip() == (
        (directory / "api_keys").read_text().strip()
    )


def test_no_secret_in_environment_image_logs_or_responses(stack: Stack) -> None:
    secrets = _secret_values(stack)
    assert {"postgres_password", "redis_password", "api_keys", "secret_key"} <= set(secrets)
    with stack.client() as client:
        responses = [
            client.get("/health").text,
            client.get("/openapi.json").text,
            client.post("/v1/conversations", json={"title": "t"}).text,
            client.get("/v1/conversations/00000000-0000-0000-0000-000000000000").text,
        ]
    exposed = {
        "environment": "\n".join(
            json.dumps(stack.inspect(service)["Config"]) for service in SERVICES
        ),
        "image history": lab.docker(
            "history", "--no-trunc", "--format", "{{.CreatedBy}}", stack.images.api
        ).stdout,
        "image config": lab.docker("image", "inspect", stack.images.api).stdout,
        "api logs": stack.compose("logs", "--no-color", "api", "migrate").stdout,
        "log file": stack.read_volume("api_logs", "cat", "/v/app.log"),
        "responses": "\n".join(responses),
    }

    leaks = [
        f"{name} in {where}"
        for name, value in secrets.items()
        for part in value.split(",")
        for where, text in exposed.items()
        if part and part in text
    ]
    assert leaks == []


def test_no_secret_in_the_image_files(stack: Stack) -> None:
    values = [part for v in _secret_values(stack).values() for part in v.split(",") if part]
    pattern = "\\|".join(values)

    found = lab.docker(
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "grep",
        stack.images.api,
        "-rlI",
        "-e",  # a secret may start with "-" (token_urlsafe): never let grep read it as an option
        pattern,
        "/app",
        "/etc",
        check=False,
    )

    assert found.returncode == 1, found.stdout  # grep: 1 means no match, 2 an error
    assert found.stdout == ""


def test_redis_refuses_a_wrong_password(stack: Stack) -> None:
    cli = "valkey-cli" if "valkey" in stack.images.redis else "redis-cli"

    wrong = stack.exec("redis", "sh", "-c", f"REDISCLI_AUTH=wrong {cli} ping", check=False)
    anonymous = stack.exec("redis", "sh", "-c", f"{cli} ping", check=False)

    assert "PONG" not in wrong.stdout
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr

"""The stand-in images honour the official images' contracts, checked on a real Docker engine."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import docker as lab
from tests.harness.engine import docker, wait_until_healthy
from tests.harness.scratch import Scratch

from . import stand_ins


@pytest.fixture(autouse=True)
def _stand_ins_in_use() -> None:
    """These check the stand-ins: they run where the stand-ins are used (CI sets the variable)."""
    if not lab.stand_ins_wanted():
        pytest.skip("the stand-in images are not in use (TEMPLATE_STAND_IN_IMAGES is not 1)")


PG_USER, PG_DB = "app", "appdb"
READY = f"pg_isready -h 127.0.0.1 -U {PG_USER} -d {PG_DB}"


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    lab.require_engine()
    with Scratch("tpl-images") as scratch:
        yield scratch


def _process_one(container: str) -> tuple[str, int]:
    """Return the command name and real uid of the container's PID 1."""
    status = docker("exec", container, "cat", "/proc/1/status").stdout
    name = re.search(r"^Name:\s+(\S+)", status, re.MULTILINE)
    uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    assert name, status
    assert uid, status
    return name.group(1), int(uid.group(1))


# --------------------------------------------------------------------------- postgres


@pytest.fixture
def postgres_image() -> str:
    lab.require_engine()
    return stand_ins.ensure_images("postgres:17-alpine")["postgres:17-alpine"]


def _start_postgres(scratch: Scratch, name: str, volume: str, *arguments: str) -> str:
    """Run a postgres container on `volume` (options, image, command) and wait until healthy."""
    container = scratch.name(name)
    docker(
        "run", "-d", "--name", container, "--label", lab.TEST_LABEL,
        "-v", f"{volume}:/var/lib/postgresql/data",
        "--health-cmd", READY, "--health-interval", "1s", "--health-retries", "90",
        *arguments,
    )  # fmt: skip
    wait_until_healthy(container)
    return container


def _psql(
    image: str, network: str, host: str, password: str, sql: str
) -> subprocess.CompletedProcess[str]:
    """Run psql in a throwaway container on `network`, over TCP with a password."""
    return docker(
        "run", "--rm", "--label", lab.TEST_LABEL, "--network", network,
        "-e", f"PGPASSWORD={password}", "-e", "PGCONNECT_TIMEOUT=5",
        image, "psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1",
        "-h", host, "-U", PG_USER, "-d", PG_DB, "-c", sql,
        check=False,
    )  # fmt: skip


def test_postgres_password_login_from_another_container(
    scratch: Scratch, postgres_image: str, tmp_path: Path
) -> None:
    network, volume = scratch.network("net"), scratch.volume("pgdata")
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-from-file\n")
    # Readable by root only: the entrypoint reads secrets before dropping to postgres.
    password_file.chmod(0o600)
    db = _start_postgres(
        scratch, "db", volume,
        "--network", network,
        "-v", f"{password_file}:/run/secrets/pg_password:ro",
        "-e", f"POSTGRES_USER={PG_USER}", "-e", f"POSTGRES_DB={PG_DB}",
        "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/pg_password",
        postgres_image,
    )  # fmt: skip

    good = _psql(postgres_image, network, db, "s3cret-from-file", "SELECT current_user")
    assert (good.returncode, good.stdout.strip()) == (0, PG_USER), good.stderr
    bad = _psql(postgres_image, network, db, "wrong", "SELECT 1")
    assert bad.returncode != 0
    assert "password authentication failed" in bad.stderr
    assert _process_one(db) == ("postgres", 70)


def test_postgres_data_survives_a_new_container(scratch: Scratch, postgres_image: str) -> None:
    network, volume = scratch.network("net"), scratch.volume("pgdata")
    settings = ["-e", f"POSTGRES_USER={PG_USER}", "-e", f"POSTGRES_DB={PG_DB}"]
    first = _start_postgres(
        scratch, "db1", volume, "--network", network,
        *settings, "-e", "POSTGRES_PASSWORD=pw", postgres_image,
    )  # fmt: skip
    created = _psql(postgres_image, network, first, "pw", "CREATE TABLE kept (v text);"
                    " INSERT INTO kept VALUES ('still here')")  # fmt: skip
    assert created.returncode == 0, created.stderr
    docker("rm", "-f", first)

    # No password this time: a second initdb would refuse to run without one.
    second = _start_postgres(
        scratch, "db2", volume, "--network", network,
        *settings, postgres_image, "postgres", "-c", "shared_buffers=48MB",
    )  # fmt: skip
    kept = _psql(postgres_image, network, second, "pw", "SELECT v FROM kept")
    assert kept.stdout.strip() == "still here", kept.stderr
    shown = _psql(postgres_image, network, second, "pw", "SHOW shared_buffers")
    assert shown.stdout.strip() == "48MB"
    assert "skipping initialization" in docker("logs", second).stdout


def test_postgres_stops_fast_on_docker_stop(scratch: Scratch, postgres_image: str) -> None:
    db = _start_postgres(
        scratch, "db", scratch.volume("pgdata"),
        "-e", "POSTGRES_PASSWORD=pw", postgres_image,
    )  # fmt: skip
    started = time.monotonic()
    docker("stop", "--time", "20", db)
    # SIGINT reached postgres itself (PID 1): a clean fast shutdown, well before the timeout.
    assert time.monotonic() - started < 10
    assert docker("inspect", "--format", "{{.State.ExitCode}}", db).stdout.strip() == "0"


def test_postgres_refuses_to_initialize_without_a_password(
    scratch: Scratch, postgres_image: str
) -> None:
    result = docker("run", "--rm", "--label", lab.TEST_LABEL, postgres_image, check=False)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD is not set" in result.stderr


def test_postgres_versions_without_a_debian_package_are_reported() -> None:
    for major in (16, 18):
        assert stand_ins.postgres_image(major) is None
        assert "Debian" in (stand_ins.unavailable_reason(f"postgres:{major}-alpine") or "")


# --------------------------------------------------------------------------- redis and valkey


@pytest.mark.parametrize(
    ("ref", "server"),
    [("redis:8-alpine", "redis"), ("valkey/valkey:8-alpine", "valkey")],
    ids=["redis", "valkey"],
)
def test_key_value_store_password_and_append_only_file(
    scratch: Scratch, ref: str, server: str
) -> None:
    image = stand_ins.ensure_images(ref)[ref]
    network, cli = scratch.network("net"), f"{server}-cli"
    store = scratch.name("store")
    docker(
        "run", "-d", "--name", store, "--label", lab.TEST_LABEL, "--network", network,
        "-v", f"{scratch.volume('data')}:/data",
        "-e", "REDISCLI_AUTH=pw",  # what a compose health check uses
        "--health-cmd", f'[ "$({cli} ping)" = PONG ]', "--health-interval", "1s",
        image, f"{server}-server", "--appendonly", "yes", "--requirepass", "pw",
    )  # fmt: skip
    wait_until_healthy(store, timeout=30)

    def ping(*auth: str) -> str:
        command = ["run", "--rm", "--label", lab.TEST_LABEL, "--network", network, image]
        return docker(*command, cli, "-h", store, *auth, "ping").stdout.strip()

    assert ping().startswith("NOAUTH")
    assert ping("-a", "pw", "--no-auth-warning") == "PONG"
    listing = docker("exec", store, "sh", "-c", "ls /data/appendonlydir").stdout
    assert ".aof" in listing
    assert _process_one(store) == (f"{server}-server", 999)


@pytest.mark.parametrize("ref", ["redis:8-alpine", "valkey/valkey:8-alpine"])
def test_key_value_store_default_command_accepts_other_containers(
    scratch: Scratch, ref: str
) -> None:
    image = stand_ins.ensure_images(ref)[ref]
    cli = "valkey-cli" if "valkey" in ref else "redis-cli"
    network, store = scratch.network("net"), scratch.name("store")
    docker("run", "-d", "--name", store, "--label", lab.TEST_LABEL, "--network", network, image)
    # No password and no bind option: the official images answer (protected mode is off).
    for _ in range(50):
        command = ["run", "--rm", "--label", lab.TEST_LABEL, "--network", network, image]
        reply = docker(*command, cli, "-h", store, "ping", check=False).stdout.strip()
        if reply == "PONG":
            return
        time.sleep(0.2)
    pytest.fail(f"{cli} ping from another container answered {reply!r}")


# --------------------------------------------------------------------------- python


PYTHON_CHECKS = """
set -eu
test "$(command -v python)" = /usr/local/bin/python
python -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version'
python -c 'import os, sysconfig; marker = os.path.join(sysconfig.get_path("stdlib"), \
"EXTERNALLY-MANAGED"); assert not os.path.exists(marker), marker'
pip --version
python -m venv /tmp/venv
/tmp/venv/bin/pip --version
pip download --quiet --no-deps --dest /tmp/downloads six
ls /tmp/downloads/six-*.whl
"""


def test_python_slim_stand_in() -> None:
    lab.require_engine()
    image = stand_ins.python_image("3.13")
    assert image is not None
    result = docker(
        "run", "--rm", "--label", lab.TEST_LABEL, image, "sh", "-c", PYTHON_CHECKS, timeout=300
    )
    assert "six-" in result.stdout


def test_python_versions_without_a_debian_package_are_reported() -> None:
    assert stand_ins.python_image("3.12") is None
    assert "3.12" in (stand_ins.unavailable_reason("python:3.12-slim") or "")

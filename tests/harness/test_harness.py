"""Self-tests of the harness against real servers: start, query, stop, restart, clean up."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from . import postgres_server
from .environment import env_for_uv, free_port, need, python_for
from .fixtures import started
from .postgres_server import PostgresServer, start_postgres
from .redis_server import RedisServer, start_redis
from .servers import ServerUnavailable


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except ConnectionRefusedError:
        return False


def _stop_and_start(server: PostgresServer | RedisServer) -> None:
    """Stop closes the server's port; start brings it back on the same one."""
    port = server.port
    server.stop()
    assert not _port_open(port)
    assert not server.is_running()
    server.start()
    assert server.port == port


def _psql(url: str, sql: str, *, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run psql with the pieces of a postgresql:// URL, as an application would connect."""
    parts = urlsplit(url)
    psql = postgres_server.postgres_bindir() / "psql"
    command = [str(psql), "-X", "-tA", "-h", str(parts.hostname), "-p", str(parts.port)]
    command += ["-U", str(parts.username), "-d", parts.path.lstrip("/"), "-c", sql]
    env = {**os.environ, "PGPASSWORD": password or str(parts.password), "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    yield from started(start_postgres, tmp_path)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from started(start_redis, tmp_path)


def test_postgres_url_accepts_a_query_over_tcp(postgres: PostgresServer) -> None:
    assert postgres.url == (f"postgresql://app:{postgres.password}@127.0.0.1:{postgres.port}/app")
    result = _psql(postgres.url, "select current_user, current_database()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "app|app"


def test_postgres_rejects_a_wrong_password(postgres: PostgresServer) -> None:
    result = _psql(postgres.url, "select 1", password="wrong")
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr


def test_postgres_create_database_returns_its_url(postgres: PostgresServer) -> None:
    url = postgres.create_database("second")
    assert url == postgres.url_for("second")
    assert _psql(url, "select current_database()").stdout.strip() == "second"


def test_postgres_url_for_takes_a_driver_scheme(postgres: PostgresServer) -> None:
    url = postgres.url_for("app", scheme="postgresql+asyncpg")
    assert url.startswith(f"postgresql+asyncpg://app:{postgres.password}@127.0.0.1:")


def test_postgres_stop_closes_the_port_and_start_keeps_the_data(
    postgres: PostgresServer,
) -> None:
    postgres.query("create table notes (body text); insert into notes values ('kept')")
    _stop_and_start(postgres)
    assert postgres.query("select body from notes") == "kept"


def test_postgres_close_removes_its_directory(tmp_path: Path) -> None:
    try:
        server = start_postgres(tmp_path)
    except ServerUnavailable as missing:
        need(False, str(missing))
        raise
    server.close()
    assert not server.directory.exists()
    assert not _port_open(server.port)


def test_missing_postgres_binaries_raise_server_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres_server, "_postgres_bindir_candidates", list)
    with pytest.raises(ServerUnavailable, match="apt-get install postgresql"):
        postgres_server.postgres_bindir()


def test_redis_answers_ping_and_set_get(redis: RedisServer) -> None:
    assert redis.url == f"redis://:{redis.password}@127.0.0.1:{redis.port}/0"
    assert redis.cli("PING") == "PONG"
    assert redis.cli("SET", "greeting", "hello") == "OK"
    assert redis.cli("GET", "greeting") == "hello"


def test_redis_requires_the_password(redis: RedisServer) -> None:
    assert redis.cli_executable is not None
    result = subprocess.run(
        [redis.cli_executable, "-p", str(redis.port), "PING"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "NOAUTH" in result.stdout + result.stderr


def test_redis_stop_closes_the_port_and_start_answers_again(redis: RedisServer) -> None:
    _stop_and_start(redis)
    assert redis.cli("PING") == "PONG"


def test_missing_redis_raises_server_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerUnavailable, match="apt-get install redis-server"):
        start_redis(tmp_path)


def test_free_port_is_bindable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))


def test_need_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    need(True, "present")
    with pytest.raises(pytest.skip.Exception, match="thing missing"):
        need(False, "thing missing")


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_need_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"thing missing \(required under CI=true\)"):
        need(False, "thing missing")


def test_python_for_finds_a_base_interpreter_of_that_version() -> None:
    found = python_for("3.11")
    assert found is not None
    probe = "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix == sys.base_prefix)"
    result = subprocess.run(
        [found, "-c", probe], env=env_for_uv(), capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["3.11", "True"]


def test_python_for_returns_none_for_an_absent_version() -> None:
    assert python_for("3.99") is None


def test_env_for_uv_never_downloads_pythons() -> None:
    assert env_for_uv()["UV_PYTHON_DOWNLOADS"] == "never"

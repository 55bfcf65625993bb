"""Real PostgreSQL and Redis servers as fixtures, for every tier that runs a project's code."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.harness.environment import need
from tests.harness.postgres_server import PostgresServer, start_postgres
from tests.harness.redis_server import RedisServer, start_redis
from tests.harness.servers import ServerUnavailable

S = TypeVar("S", PostgresServer, RedisServer)


def started(start: Callable[[Path], S], directory: Path) -> Iterator[S]:
    """Start a server in the directory and stop it afterwards; skip (fail under CI) without it."""
    try:
        server = start(directory)
    except ServerUnavailable as exc:
        need(False, str(exc))
        raise
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    yield from started(start_postgres, tmp_path_factory.mktemp("postgres"))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from started(start_redis, tmp_path_factory.mktemp("redis"))

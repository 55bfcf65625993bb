import asyncio
import socket
import time
from dataclasses import replace
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api.health import check_database, timed_check
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.resources import open_resources
from tests.conftest import make_settings, serve


def _closed_port_url(scheme: str) -> str:
    # Port 1 on loopback: nothing listens there, so connections are refused at once.
    return f"{scheme}://user:password@127.0.0.1:1/db"


async def test_health_reports_connected_dependencies(client: AsyncClient) -> None:
    response = await client.get("/health", headers={"Authorization": ""})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database"] == "connected"
    assert body["redis"] == "connected"
    assert body["version"]
    assert set(body["checks"]) == {"database", "redis"}
    assert all(check["latency_ms"] >= 0 for check in body["checks"].values())


async def test_liveness_needs_no_dependency(client: AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_unreachable_redis_makes_health_503_quickly(
    tmp_path: Path, migrated: str, connection: AsyncConnection
) -> None:
    settings = make_settings(tmp_path, migrated, "redis://:secret@127.0.0.1:1/0")
    async for client in serve(settings, connection):
        started = time.monotonic()
        response = await client.get("/health")
        elapsed = time.monotonic() - started
        live = await client.get("/health/live")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["redis"]) == (
        "unhealthy",
        "connected",
        "disconnected",
    )
    assert elapsed < 2
    assert live.status_code == 200
    assert "127.0.0.1" not in response.text
    assert "secret" not in response.text


async def test_unreachable_database_makes_health_503_without_leaking_the_dsn(
    tmp_path: Path, redis_url: str, connection: AsyncConnection
) -> None:
    settings = make_settings(tmp_path, _closed_port_url("postgresql"), redis_url)
    async for client in serve(settings, connection):
        response = await client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "disconnected"
    assert body["redis"] == "connected"
    assert body["checks"]["database"]["error"] == "unreachable"
    assert "password" not in response.text


async def test_schema_behind_head_fails_the_database_check(settings: Settings) -> None:
    async with open_resources(settings, Metrics()) as resources:
        outdated = replace(resources, schema_head="a-newer-revision")
        result = await timed_check(lambda: check_database(outdated), 1.0)

    assert result.status == "disconnected"
    assert result.error == "schema not at head; run alembic upgrade head"


async def test_a_silent_dependency_is_cut_off_at_the_budget(
    tmp_path: Path, migrated: str, connection: AsyncConnection
) -> None:
    # A real listener that accepts connections and never answers: a stalled Redis.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        settings = make_settings(
            tmp_path,
            migrated,
            f"redis://:secret@127.0.0.1:{port}/0",
            health={"timeout_seconds": 0.5},
        )
        async for client in serve(settings, connection):
            started = time.monotonic()
            response = await client.get("/health")
            elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["error"] == "no answer within 0.5 s"
    assert elapsed < 1.5


async def test_a_connection_the_server_closed_is_replaced_unseen(
    settings: Settings, connection: AsyncConnection
) -> None:
    # What a database restart does to every pooled connection, done to one.
    closed = asyncio.Event()
    async with open_resources(settings, Metrics()) as resources:
        async with resources.engine.connect() as pooled:
            pid = await pooled.scalar(text("SELECT pg_backend_pid()"))
            driver = (await pooled.get_raw_connection()).driver_connection
            assert driver is not None
            driver.add_termination_listener(lambda _: closed.set())
        # The pool holds it now, idle, when the server ends it.
        await connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await asyncio.wait_for(closed.wait(), timeout=5)
        result = await timed_check(lambda: check_database(resources), 5.0)
        async with resources.engine.connect() as pooled:
            new_pid = await pooled.scalar(text("SELECT pg_backend_pid()"))

    assert result.status == "connected"
    assert new_pid != pid

"""Metrics across processes: the connection pool's gauges, and several server processes
(multi-process mode) adding up in every scrape."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.loading import PROJECT_ROOT
from app.config.settings import Settings
from app.core.metrics import Metrics, _pool_counted
from app.resources import open_resources
from tests.conftest import API_KEY, free_port
from tests.metrics import sample


async def test_the_pool_reports_connections_in_use_when_scraped(settings: Settings) -> None:
    metrics = Metrics()
    async with open_resources(settings, metrics) as resources:
        idle = metrics.exposition()
        async with resources.engine.connect():
            busy = metrics.exposition()

    assert sample(idle, "db_pool_connections_in_use") == 0
    assert sample(busy, "db_pool_connections_in_use") == 1
    assert sample(busy, "db_pool_connections_max") == 15
    # Closed with the resources: a later scrape does not read a disposed pool.
    assert sample(metrics.exposition(), "db_pool_connections_in_use") is None


async def test_with_several_processes_the_pool_is_counted_as_connections_come_and_go(
    engine: AsyncEngine,
) -> None:
    # What each process of multi-process mode writes to its file, here into a registry.
    registry = CollectorRegistry()
    with _pool_counted(engine.sync_engine.pool, 15, registry):
        async with engine.connect(), engine.connect():
            busy = generate_latest(registry)
        idle = generate_latest(registry)
    async with engine.connect():
        unwatched = generate_latest(registry)

    assert sample(busy, "db_pool_connections_in_use") == 2
    assert sample(busy, "db_pool_connections_max") == 15
    assert sample(idle, "db_pool_connections_in_use") == 0
    assert sample(unwatched, "db_pool_connections_in_use") == 0


def test_several_server_processes_add_up_in_every_scrape(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    shared = tmp_path / "prometheus"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with _two_processes(tmp_path, port, migrated, redis_url, shared):
        # Each process reports its pool's limit: both lifespans have started at 2 x 15.
        _until_scraped(base, lambda text: sample(text, "db_pool_connections_max") == 30)
        for _ in range(20):  # a connection each, so that both processes take some
            with httpx.Client() as one:
                assert one.get(f"{base}/health").status_code == 200
        scrapes = [httpx.get(f"{base}/metrics").text for _ in range(6)]

    health = {"handler": "/health", "method": "GET", "status": "200"}
    assert {sample(text, "http_requests_total", **health) for text in scrapes} == {20}
    assert all(sample(text, "http_requests_inprogress") == 0 for text in scrapes)
    # Each /health took a connection from its process's pool and gave it back.
    assert all(sample(text, "db_pool_connections_in_use") == 0 for text in scrapes)
    assert len({path.stem.split("_")[-1] for path in shared.glob("counter_*.db")}) == 2
    # Processes that stopped take their live gauges (in progress, pool) out of the sums.
    assert not list(shared.glob("gauge_live*.db"))


@contextmanager
def _two_processes(
    tmp_path: Path, port: int, database_url: str, redis_url: str, shared: Path
) -> Iterator[None]:
    """`python -m app --workers 2`, configured by its environment alone; stopped on exit."""
    own = ("DATABASE_", "REDIS_", "API_KEYS", "SECRET_KEY", "OPENAI_", "CONFIG_FILE", "OTEL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env |= {
        "PYTHONPATH": str(PROJECT_ROOT),
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_KEYS": API_KEY,
        "SECRET_KEY": "test-secret",
        "OPENAI_API_KEY": "test-openai-key",
        "CONFIG_FILE": str(PROJECT_ROOT / "config" / "config.yaml"),
        "LOGS_DIR": str(tmp_path / "logs"),
        "UPLOADS_DIR": str(tmp_path / "uploads"),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    command = [sys.executable, "-m", "app", "--workers", "2", "--host", "127.0.0.1"]
    # In tmp_path, so that no .env of the project's is read.
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [*command, "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


# Two processes import the app at once: on a busy two-core machine (a CI lane beside image
# builds) that has taken over 30 s. A bound on waiting to start, not a measure of speed.
def _until_scraped(base: str, condition: Callable[[str], bool], within: float = 120) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if condition(httpx.get(f"{base}/metrics").text):
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "the server processes did not start"
        time.sleep(0.2)

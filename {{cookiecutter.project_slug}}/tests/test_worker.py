"""The worker process's own code: `serve` executes runs the api queued and stops on SIGTERM;
`python -m app.alive` tells whether it is alive.

Unlike the other tests, these commit: the worker has its own connections, so the rows
must be real. Each test deletes the conversation it made (runs and messages go with it).
"""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app import alive, worker
from app.config.sections import MetricsConfig
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.core.queue import QUEUE_NAME
from app.resources import open_resources
from app.runs.models import Run
from tests.conftest import free_port, serve
from tests.metrics import sample


@pytest.fixture
async def committing_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async for client in serve(settings, None):
        yield client


@pytest.fixture
def alive_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "worker.alive"
    monkeypatch.setattr(alive, "ALIVE_FILE", path)
    return path


async def _until(condition: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_worker_executes_a_queued_run_and_stops_on_sigterm(
    committing_client: AsyncClient, settings: Settings, alive_file: Path
) -> None:
    client = committing_client
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    serving = asyncio.create_task(worker.serve(settings))
    try:
        run = (
            await client.post(
                f"/v1/conversations/{conversation}/runs",
                json={"content": "time?\n/tool current_time"},
            )
        ).json()

        async def finished() -> bool:
            status = (await client.get(f"/v1/runs/{run['id']}")).json()["status"]
            return bool(status == "succeeded")

        await _until(finished)

        async def swept() -> bool:
            return alive.healthy()

        await _until(swept)
        was_alive = alive.healthy()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, timeout=15)
    finally:
        serving.cancel()
        await client.delete(f"/v1/conversations/{conversation}")

    assert was_alive
    assert not alive.healthy()
    assert not await anyio.Path(alive_file).exists()


def test_the_check_fails_once_the_deadline_has_passed(alive_file: Path) -> None:
    alive_file.write_text(str(time.time() + 10))

    assert alive.healthy()
    assert not alive.healthy(now=time.time() + 11)
    alive_file.write_text("garbage")
    assert not alive.healthy()


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient() as scraper:
        return (await scraper.get(url)).text


# Runs held at once beyond what an api process's pool serves: the worker's pool follows them.
@pytest.mark.parametrize(
    "config_overrides", [{"worker": {"sweep_seconds": 0.1, "concurrency": 400}}]
)
async def test_the_worker_serves_runs_by_state_and_queue_depth(
    committing_client: AsyncClient, settings: Settings, engine: AsyncEngine, alive_file: Path
) -> None:
    client = committing_client
    url = f"http://127.0.0.1:{settings.config.metrics.worker_port}/metrics"
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    serving = asyncio.create_task(worker.serve(settings))
    try:
        run = (
            await client.post(f"/v1/conversations/{conversation}/runs", json={"content": "hi"})
        ).json()

        async def finished() -> bool:
            status = (await client.get(f"/v1/runs/{run['id']}")).json()["status"]
            return bool(status == "succeeded")

        await _until(finished)
        async with engine.connect() as connection:
            succeeded = await connection.scalar(
                select(func.count()).select_from(Run).where(Run.status == "succeeded")
            )

        async def swept() -> bool:
            return sample(await _scrape(url), "agent_runs", state="succeeded") == succeeded

        await _until(swept)
        text = await _scrape(url)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, timeout=15)
    finally:
        serving.cancel()
        await client.delete(f"/v1/conversations/{conversation}")

    assert sample(text, "agent_runs", state="running") == 0
    assert sample(text, "agent_run_queue_depth") == 0
    # The run's model call was made, and counted, by the worker.
    assert sample(text, "llm_calls_total", provider="echo", model="echo", outcome="ok") == 1
    assert sample(text, "db_pool_connections_max") == 40
    with pytest.raises(httpx.ConnectError):  # the server stopped with the worker
        await _scrape(url)


async def test_the_sweep_reports_the_queue_length(settings: Settings, redis: Redis) -> None:
    metrics = Metrics()
    await redis.lpush(QUEUE_NAME, "a", "b", "c")
    async with open_resources(settings, metrics) as resources:
        await worker._report_backlog(resources)

    assert sample(metrics.exposition(), "agent_run_queue_depth") == 3
    assert sample(metrics.exposition(), "agent_runs", state="running") is not None


async def test_with_metrics_off_the_worker_serves_none() -> None:
    config = MetricsConfig(enabled=False, worker_host="127.0.0.1", worker_port=free_port())

    async with worker._metrics_served(config, Metrics()):
        with pytest.raises(httpx.ConnectError):
            await _scrape(f"http://127.0.0.1:{config.worker_port}/metrics")

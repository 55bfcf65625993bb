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
import pytest
from httpx import AsyncClient

from app import alive, worker
from app.core.config import Settings
from tests.conftest import serve


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

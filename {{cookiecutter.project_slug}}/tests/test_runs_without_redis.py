"""Background runs while Redis is away: the api still accepts a run (the sweep queues it
later) and the worker waits between reconnects rather than spinning."""

import asyncio
import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.metrics import Metrics
from app.core.queue import create_broker, enqueue
from tests.conftest import make_settings, serve, start_run
from tests.metrics import sample


async def test_a_worker_waits_between_reconnects_while_redis_is_away() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    worker_side = create_broker(nowhere, timeout=None)
    api_side = create_broker(nowhere, timeout=1.0)

    # The worker keeps retrying, with pauses (not a tight loop that burns a core).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(aiter(worker_side.listen())), 1.0)
    # The api gives up at once: the run stays queued, and the sweep sends it again.
    metrics = Metrics()
    assert await asyncio.wait_for(enqueue(api_side, uuid.uuid4(), metrics), 1.0) is False
    assert sample(metrics.exposition(), "redis_errors_total", operation="enqueue") == 1


async def test_a_run_started_while_redis_is_away_is_accepted_and_kept(
    tmp_path: Path, migrated: str, connection: AsyncConnection
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    settings = make_settings(tmp_path, migrated, nowhere)
    async for client in serve(settings, connection):
        run = await start_run(client, "later")
        stored = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert (run["status"], stored["status"]) == ("queued", "queued")

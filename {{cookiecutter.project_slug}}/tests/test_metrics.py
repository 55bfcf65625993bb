"""GET /metrics as an operator reads it: requests by route, model and tool calls, refusals."""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.config import PROJECT_ROOT, Settings
from app.core.http_metrics import HttpMetricsMiddleware
from app.core.metrics import Metrics, _pool_counted
from app.main import create_app
from app.resources import open_resources
from tests.conftest import API_KEY, free_port, make_settings, new_conversation_id, serve
from tests.fake_openai import USAGE, FakeOpenAI
from tests.metrics import sample, scrape
from tests.test_limits import SlowBody

MESSAGES = "/v1/conversations/{conversation_id}/messages"


async def test_requests_are_counted_by_route_template_method_and_status(
    client: AsyncClient,
) -> None:
    created = await client.post("/v1/conversations", json={})
    unknown = await client.get(f"/v1/conversations/{uuid.uuid4()}")
    await client.get(f"/v1/conversations/{uuid.uuid4()}")
    await client.get("/no/such/path")
    await scrape(client)  # not counted, as the next one shows

    text = await scrape(client)

    def requests(handler: str, method: str, status: str) -> float | None:
        return sample(text, "http_requests_total", handler=handler, method=method, status=status)

    one = "/v1/conversations/{conversation_id}"
    assert (created.status_code, unknown.status_code) == (201, 404)
    assert requests(one, "GET", "404") == 2
    assert requests("/v1/conversations", "POST", "201") == 1
    # Paths no route knows share one series.
    assert requests("none", "GET", "404") == 1
    assert requests("/metrics", "GET", "200") is None
    assert sample(text, "http_request_duration_seconds_count", handler=one, method="GET") == 2
    assert sample(text, "http_requests_inprogress") == 0


async def test_metrics_answer_without_a_key_and_are_not_rate_limited(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection
) -> None:
    settings = make_settings(tmp_path, migrated, redis_url, rate_limit={"requests": 1})
    async for client in serve(settings, connection):
        keyed = [(await client.get("/v1/conversations")).status_code for _ in range(2)]
        texts = [await scrape(client) for _ in range(3)]  # each asserts a 200

    assert keyed == [200, 429]
    assert sample(texts[-1], "rate_limit_rejections_total") == 1


async def test_a_request_in_progress_is_counted_until_it_ends(client: AsyncClient) -> None:
    body = SlowBody(b'{"title": "sl', b'ow"}')
    headers = {"Content-Type": "application/json"}
    slow = asyncio.create_task(client.post("/v1/conversations", content=body, headers=headers))
    await body.reading.wait()

    during = await scrape(client)
    body.release.set()
    await slow
    after = await scrape(client)

    assert sample(during, "http_requests_inprogress") == 1
    assert sample(after, "http_requests_inprogress") == 0


async def test_a_turn_counts_its_model_calls_tokens_and_tool_calls(
    openai_client: AsyncClient,
) -> None:
    conversation = await new_conversation_id(openai_client)
    url = MESSAGES.format(conversation_id=conversation)

    reply = await openai_client.post(url, json={"content": "time?\n/tool current_time"})
    text = await scrape(openai_client)

    # The model asked for the tool, then answered: two calls, each billed as USAGE.
    assert reply.status_code == 201
    assert sample(text, "llm_calls_total", provider="openai", outcome="ok") == 2
    assert sample(text, "llm_tokens_total", provider="openai", kind="prompt") == (
        2 * USAGE["prompt_tokens"]
    )
    assert sample(text, "llm_tokens_total", provider="openai", kind="completion") == (
        2 * USAGE["completion_tokens"]
    )
    assert sample(text, "llm_call_duration_seconds_count", provider="openai") == 2
    assert sample(text, "agent_tool_calls_total", tool="current_time", outcome="ok") == 1
    assert sample(text, "agent_tool_call_duration_seconds_count", tool="current_time") == 1


async def test_a_streamed_turn_is_counted_once_per_model_call(
    openai_client: AsyncClient,
) -> None:
    conversation = await new_conversation_id(openai_client)
    url = MESSAGES.format(conversation_id=conversation)

    async with openai_client.stream(
        "POST", url, json={"content": "hello"}, headers={"Accept": "text/event-stream"}
    ) as response:
        await response.aread()
    text = await scrape(openai_client)

    completion_tokens = sample(text, "llm_tokens_total", provider="openai", kind="completion")
    assert sample(text, "llm_calls_total", provider="openai", outcome="ok") == 1
    assert completion_tokens == USAGE["completion_tokens"]


async def test_a_failed_model_call_is_counted_as_an_error(
    openai_client: AsyncClient, fake_openai: FakeOpenAI
) -> None:
    conversation = await new_conversation_id(openai_client)
    fake_openai.fail_with = 500

    reply = await openai_client.post(
        MESSAGES.format(conversation_id=conversation), json={"content": "hi"}
    )
    text = await scrape(openai_client)

    assert reply.status_code == 502
    assert sample(text, "llm_calls_total", provider="openai", outcome="error") == 1
    assert sample(text, "llm_calls_total", provider="openai", outcome="ok") is None


async def test_tool_calls_are_counted_by_tool_and_outcome(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)
    lines = [
        "/tool current_time",
        "/tool read_file " + json.dumps({"file_id": "not-a-uuid"}),
        "/tool read_file " + json.dumps({"file_id": str(uuid.uuid4())}),
        "/tool made_up_by_the_model",
    ]

    reply = await client.post(
        MESSAGES.format(conversation_id=conversation), json={"content": "\n".join(lines)}
    )
    text = await scrape(client)

    assert reply.status_code == 201
    calls = "agent_tool_calls_total"
    assert sample(text, calls, tool="current_time", outcome="ok") == 1
    assert sample(text, calls, tool="read_file", outcome="bad_arguments") == 1
    assert sample(text, calls, tool="read_file", outcome="error") == 1
    # A name the model invented is not a label value of its own.
    assert sample(text, calls, tool="unknown", outcome="unknown_tool") == 1
    assert "made_up_by_the_model" not in text
    assert sample(text, "llm_calls_total", provider="echo", outcome="ok") == 5


@pytest.mark.parametrize("config_overrides", [{"rate_limit": {"requests": 2}}])
async def test_rate_limited_requests_are_counted(client: AsyncClient) -> None:
    statuses = [(await client.get("/v1/conversations")).status_code for _ in range(4)]
    text = await scrape(client)

    refused = {"handler": "/v1/conversations", "method": "GET", "status": "429"}
    assert statuses == [200, 200, 429, 429]
    assert sample(text, "rate_limit_rejections_total") == 2
    assert sample(text, "http_requests_total", **refused) == 2


async def test_redis_errors_are_counted_by_operation(
    tmp_path: Path, migrated: str, connection: AsyncConnection
) -> None:
    nowhere = f"redis://:secret@127.0.0.1:{free_port()}/0"
    settings = make_settings(tmp_path, migrated, nowhere)
    async for client in serve(settings, connection):
        listed = await client.get("/v1/conversations")  # the limiter fails open
        health = await client.get("/health")
        text = await scrape(client)

    assert (listed.status_code, health.status_code) == (200, 503)
    assert sample(text, "redis_errors_total", operation="rate_limit") == 1
    assert sample(text, "redis_errors_total", operation="health") == 1
    assert sample(text, "redis_errors_total", operation="enqueue") == 0


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


@pytest.mark.parametrize("config_overrides", [{"metrics": {"enabled": False}}])
async def test_metrics_switched_off_answer_404_and_count_no_request(
    client: AsyncClient, settings: Settings
) -> None:
    await client.get("/v1/conversations")

    response = await client.get("/metrics")

    assert response.status_code == 404
    # Nothing counts requests: the switch is for measuring what counting costs.
    middleware = [getattr(m.cls, "__name__", "") for m in create_app(settings).user_middleware]
    assert HttpMetricsMiddleware.__name__ not in middleware


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


def _until_scraped(base: str, condition: Callable[[str], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if condition(httpx.get(f"{base}/metrics").text):
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "the server processes did not start"
        time.sleep(0.2)

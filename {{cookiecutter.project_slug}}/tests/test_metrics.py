"""GET /metrics as an operator reads it: requests by route, model and tool calls, refusals."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.settings import Settings
from app.core.http_metrics import HttpMetricsMiddleware
from app.main import create_app
from tests.conftest import free_port, make_settings, new_conversation_id, serve
from tests.fake_openai import USAGE, FakeOpenAI
from tests.metrics import sample, scrape
from tests.test_limits import SlowBody

MESSAGES = "/v1/conversations/{conversation_id}/messages"

# The labels of the model a call went to.
OPENAI = {"provider": "openai", "model": "test-model"}
ECHO = {"provider": "echo", "model": "echo"}


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
    assert sample(text, "llm_calls_total", **OPENAI, outcome="ok") == 2
    assert sample(text, "llm_tokens_total", **OPENAI, kind="prompt") == (2 * USAGE["prompt_tokens"])
    assert sample(text, "llm_tokens_total", **OPENAI, kind="completion") == (
        2 * USAGE["completion_tokens"]
    )
    assert sample(text, "llm_call_duration_seconds_count", **OPENAI) == 2
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

    completion_tokens = sample(text, "llm_tokens_total", **OPENAI, kind="completion")
    assert sample(text, "llm_calls_total", **OPENAI, outcome="ok") == 1
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
    assert sample(text, "llm_calls_total", **OPENAI, outcome="error") == 1
    assert sample(text, "llm_calls_total", **OPENAI, outcome="ok") is None


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
    assert sample(text, "llm_calls_total", **ECHO, outcome="ok") == 5


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

"""Budgets per key: a model call that could cross one is refused before it reaches the model,
however many turns race for the last of it, and every way in says so in its own shape."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from ag_ui.core import EventType, RunErrorEvent
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.agent.mcp import McpTools
from app.config.settings import Settings
from app.core.db import create_sessionmaker
from app.core.metrics import Metrics
from app.core.queue import create_broker
from app.flows.execution import Executor
from app.llm.factory import create_provider
from app.spend import bounds
from app.spend.models import Hold, ModelCall
from app.turns import TurnBuilder
from tests.conftest import make_settings, new_conversation_id, serve
from tests.fake_openai import FakeOpenAI
from tests.metrics import sample, scrape
from tests.sse import events
from tests.test_agui import parsed, run_input, user

# What the fake model charges: nothing in, a dollar per million tokens out; and every answer
# is as long as the call allowed, so a call costs exactly what its hold bounds.
PRICE = {"input": 0, "output": 1}
MAX_TOKENS = 1000
CALL_USD = Decimal(MAX_TOKENS) / 1_000_000


@dataclass
class Api:
    """The api on its own engine (writes committed, as real concurrent turns need), a key of
    the test's own, and a worker's executor on the same settings."""

    client: AsyncClient
    settings: Settings
    owner: str


def _names() -> tuple[str, str]:
    return f"budget-{uuid.uuid4().hex[:12]}", f"budget-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def priced_fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    def full_length(request: dict[str, Any]) -> dict[str, int]:
        out = request["max_tokens"]
        return {"prompt_tokens": 50, "completion_tokens": out, "total_tokens": 50 + out}

    fake_openai.usage = full_length
    return fake_openai


async def _api(
    tmp_path: Path, migrated: str, redis_url: str, name: str, **config: Any
) -> AsyncIterator[Api]:
    """A named key (API_KEYS name:value) whose value is the name too."""
    settings = make_settings(
        tmp_path, migrated, redis_url, api_keys=f"{name}:{name},other:other-{name}", **config
    )
    async for client in serve(settings, None, api_key=name):
        yield Api(client, settings, name)


def _openai_config(fake: FakeOpenAI, budgets: dict[str, Any]) -> dict[str, Any]:
    return {
        "llm": {
            "provider": "openai",
            "model": "budget-model",
            "base_url": fake.base_url,
            "max_tokens": MAX_TOKENS,
            "max_retries": 0,
        },
        "spend": {"prices": {"openai:budget-model": PRICE}, "budgets": budgets},
    }


@pytest.fixture
async def worker(engine: AsyncEngine) -> AsyncIterator[Any]:
    """Build an in-process worker for an api's settings, on committed sessions."""
    opened: list[Executor] = []

    async def executor_for(settings: Settings) -> Executor:
        metrics = Metrics()
        broker = create_broker(settings.redis_url.get_secret_value(), timeout=1.0)
        await broker.startup()
        mcp = McpTools((), settings.config.agent)
        llm = create_provider(settings, metrics)
        turns = TurnBuilder(settings, create_sessionmaker(engine), llm, metrics, mcp)
        executor = Executor(turns, broker)
        opened.append(executor)
        return executor

    yield executor_for
    for executor in opened:
        await executor.turns.llm.aclose()
        await executor.broker.shutdown()


async def _ledger(engine: AsyncEngine, owner: str) -> tuple[int, Decimal, int]:
    """The owner's ledger rows, their cost, and the holds it has left."""
    maker = create_sessionmaker(engine)
    async with maker() as session:
        calls, cost = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(ModelCall.cost_usd), 0)).where(
                    ModelCall.owner == owner
                )
            )
        ).one()
        holds = await session.scalar(select(func.count()).where(Hold.owner == owner))
    return calls, Decimal(str(cost)), holds or 0


def _any(client: AsyncClient) -> Any:
    # The SDK takes an httpx client as well as an httpx2 one; its annotation names only the
    # latter.
    return client


async def _refused_chats(client: AsyncClient) -> float:
    """Chat completions the api has answered 429, by its own metrics."""
    labels = {"handler": "/v1/chat/completions", "method": "POST", "status": "429"}
    return sample(await scrape(client), "http_requests_total", **labels) or 0


async def _message(client: AsyncClient, conversation: str) -> int:
    url = f"/v1/conversations/{conversation}/messages"
    return (await client.post(url, json={"content": "hello"})).status_code


async def _chat(client: AsyncClient) -> int:
    body = {"model": "agent", "messages": [{"role": "user", "content": "hello"}]}
    return (await client.post("/v1/chat/completions", json=body)).status_code


async def _queued(client: AsyncClient, content: str) -> str:
    conversation = await new_conversation_id(client)
    url = f"/v1/conversations/{conversation}/runs"
    response = await client.post(url, json={"content": content})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture
def slow_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the race: each hold's transaction waits after its statement, before it commits,
    as on a busy database. Without the owner's lock, racing calls would each read sums that
    leave out the others' uncommitted holds, and all would be admitted."""
    take = bounds.take_hold

    async def slowly(*args: Any) -> int | None:
        taken = await take(*args)
        await asyncio.sleep(0.02)
        return taken

    monkeypatch.setattr(bounds, "take_hold", slowly)


@pytest.mark.usefixtures("slow_holds")
async def test_a_budget_worth_k_calls_lets_exactly_k_of_4k_racing_turns_reach_the_model(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    priced_fake: FakeOpenAI,
    engine: AsyncEngine,
    worker: Any,
) -> None:
    k = 5
    name, _ = _names()
    config = _openai_config(priced_fake, {"keys": {name: {"usd_per_day": str(k * CALL_USD)}}})
    async for api in _api(tmp_path, migrated, redis_url, name, **config):
        executor = await worker(api.settings)
        runs = [await _queued(api.client, f"run {i}") for i in range(2 * k)]
        conversations = [await new_conversation_id(api.client) for _ in range(k)]

        # 4k turns at once: k messages and k chat completions on the api, 2k runs on a worker.
        answers = await asyncio.gather(
            *(_message(api.client, c) for c in conversations),
            *(_chat(api.client) for _ in range(k)),
            *(executor.execute(uuid.UUID(run)) for run in runs),
        )
        finished = [(await api.client.get(f"/v1/runs/{run}")).json() for run in runs]
        usage = (await api.client.get("/v1/usage")).json()

    statuses = [a for a in answers if a is not None]
    succeeded = statuses.count(201) + statuses.count(200)
    succeeded += sum(run["status"] == "succeeded" for run in finished)
    # Exactly k calls reached the model, each carrying the ceiling its hold was priced at.
    assert len(priced_fake.requests) == k
    assert {request["max_tokens"] for request in priced_fake.requests} == {MAX_TOKENS}
    assert succeeded == k
    # Every other turn was refused before any call: 429 on the api, a stop reason on runs.
    assert sorted(set(statuses) - {200, 201}) == [429]
    refused_runs = [run for run in finished if run["status"] != "succeeded"]
    assert {(run["status"], run["stop_reason"]) for run in refused_runs} <= {
        ("failed", "budget_exceeded")
    }
    assert await _ledger(engine, name) == (k, k * CALL_USD, 0)
    [day] = [b for b in usage["budgets"] if b["name"] == "usd_per_day"]
    assert (day["spent"], day["held"], day["left"]) == (str(k * CALL_USD), "0", "0")


async def test_a_run_stopped_by_its_budget_keeps_the_steps_it_took(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    priced_fake: FakeOpenAI,
    engine: AsyncEngine,
    worker: Any,
) -> None:
    name, _ = _names()
    # Worth one call: the tool call's; the answer after the tool's result is refused.
    config = _openai_config(priced_fake, {"keys": {name: {"usd_per_day": str(CALL_USD)}}})
    async for api in _api(tmp_path, migrated, redis_url, name, **config):
        executor = await worker(api.settings)
        run_id = await _queued(api.client, "time?\n/tool current_time")
        await executor.execute(uuid.UUID(run_id))
        run = (await api.client.get(f"/v1/runs/{run_id}")).json()
        conversation = await api.client.get(f"/v1/conversations/{run['conversation_id']}")
        stream = await api.client.get(f"/v1/runs/{run_id}/events")

    assert (run["status"], run["stop_reason"]) == ("failed", "budget_exceeded")
    assert "usd_per_day" in run["error"]
    roles = [m["role"] for m in conversation.json()["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert len(priced_fake.requests) == 1
    error = [data for event, data in events(stream.text) if event == "error"]
    assert error == [{"detail": run["error"], "stop_reason": "budget_exceeded"}]
    assert await _ledger(engine, name) == (1, CALL_USD, 0)


async def test_a_call_that_could_cross_a_token_budget_is_refused_in_each_protocols_shape(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    name, _ = _names()
    # Less than one call may use (its input's bound plus llm.max_tokens), more than nothing.
    budgets = {"keys": {name: {"tokens_per_day": 500}}}
    async for api in _api(
        tmp_path, migrated, redis_url, name, spend={"budgets": budgets}, llm={"max_tokens": 400}
    ):
        conversation = await new_conversation_id(api.client)
        url = f"/v1/conversations/{conversation}/messages"
        answer = await api.client.post(url, json={"content": "hello"})
        streamed = await api.client.post(
            url, json={"content": "hello"}, headers={"Accept": "text/event-stream"}
        )
        stored = (await api.client.get(f"/v1/conversations/{conversation}")).json()
        usage = (await api.client.get("/v1/usage")).json()

    midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time())
    to_midnight = (midnight.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    assert answer.status_code == 429
    assert 0 < int(answer.headers["Retry-After"]) - to_midnight <= 5
    detail = answer.json()["detail"]
    assert detail.startswith("this key's budget tokens_per_day of 500 tokens would be crossed")
    [error] = [data for event, data in events(streamed.text) if event == "error"]
    assert error["code"] == "budget_exceeded"
    assert error["retry_after"] > 0
    # The messages were stored (the refusal came at the model call); no model step was.
    assert [m["role"] for m in stored["messages"]] == ["user", "user"]
    assert usage["budgets"] == [
        {
            "name": "tokens_per_day",
            "limit": "500",
            "spent": "0",
            "held": "0",
            "left": "500",
            "resets_at": midnight.isoformat() + "Z",
        }
    ]


async def test_a_used_up_budget_refuses_every_way_in_before_anything_is_stored(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    name, other = _names()
    # Nothing for any key by default; the named key has its own.
    budgets = {"default": {"usd_per_month": 0}, "keys": {other: {"usd_per_month": 1}}}
    async for api in _api(tmp_path, migrated, redis_url, name, spend={"budgets": budgets}):
        conversation = await new_conversation_id(api.client)
        message = await api.client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hello"}
        )
        run = await api.client.post(
            f"/v1/conversations/{conversation}/runs", json={"content": "hello"}
        )
        agui = await api.client.post(
            f"/v1/conversations/{conversation}/agui", json=run_input(conversation, user("hi"))
        )
        stored = (await api.client.get(f"/v1/conversations/{conversation}")).json()
        # Retries allowed, as clients have them: the refusal must tell the SDK not to.
        sdk = openai.AsyncOpenAI(
            api_key=name, base_url="http://testserver/v1", http_client=_any(api.client)
        )
        with pytest.raises(openai.RateLimitError) as refused:
            await sdk.chat.completions.create(
                model="agent", messages=[{"role": "user", "content": "hello"}]
            )
        refused_chats = await _refused_chats(api.client)
        exposition = await scrape(api.client)

    for answer in (message, run):
        assert answer.status_code == 429, answer.text
        assert "usd_per_month of 0 US dollars is used up" in answer.json()["detail"]
        assert int(answer.headers["Retry-After"]) > 0
    agui_events = parsed(agui.text)
    assert [e.type for e in agui_events] == [EventType.RUN_STARTED, EventType.RUN_ERROR]
    assert isinstance(agui_events[-1], RunErrorEvent)
    assert agui_events[-1].code == "budget_exceeded"
    assert stored["messages"] == []
    # The message, the run, the AG-UI run and the chat completion: each refused once.
    assert sample(exposition, "budget_refusals_total", budget="usd_per_month") == 4
    # OpenAI's shape for a spent quota; the SDK did not retry it (x-should-retry: false).
    assert refused.value.code == "insufficient_quota"
    assert refused_chats == 1
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "usd_per_month" in refused.value.message


async def test_a_named_key_has_its_own_budget(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    name, _ = _names()
    budgets = {
        "default": {"usd_per_day": 0, "tokens_per_month": 1_000_000},
        "keys": {name: {"usd_per_day": 1}},
    }
    async for api in _api(tmp_path, migrated, redis_url, name, spend={"budgets": budgets}):
        conversation = await new_conversation_id(api.client)
        mine = await api.client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hello"}
        )
        usage = (await api.client.get("/v1/usage")).json()

    assert mine.status_code == 201, mine.text
    # The key's bounds replace the default's where it sets them and keep the others.
    assert [b["name"] for b in usage["budgets"]] == ["tokens_per_month", "usd_per_day"]

"""The ledger: every model call a turn makes is recorded under the caller's key with its
tokens and cost, and GET /v1/usage reads it back by day and model."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.sections import AppConfig
from tests.conftest import OTHER_API_KEY, make_settings, new_conversation_id, serve
from tests.fake_openai import USAGE, FakeOpenAI
from tests.metrics import sample, scrape

THEIRS = {"Authorization": f"Bearer {OTHER_API_KEY}"}


async def _usage(client: AsyncClient, **request: Any) -> dict[str, Any]:
    response = await client.get("/v1/usage", **request)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def _message(client: AsyncClient, content: str) -> dict[str, Any]:
    conversation = await new_conversation_id(client)
    url = f"/v1/conversations/{conversation}/messages"
    response = await client.post(url, json={"content": content})
    assert response.status_code == 201, response.text
    exchange: dict[str, Any] = response.json()
    return exchange


@pytest.fixture
async def client(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection
) -> AsyncIterator[AsyncClient]:
    """A client whose key is new: its ledger starts empty (other modules commit turns)."""
    async for client in _serve(tmp_path, migrated, redis_url, connection):
        yield client


async def _serve(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    connection: AsyncConnection,
    key: str | None = None,
    **config: Any,
) -> AsyncIterator[AsyncClient]:
    key = key or f"spend-{uuid.uuid4().hex}"
    settings = make_settings(
        tmp_path, migrated, redis_url, api_keys=f"{key},{OTHER_API_KEY}", **config
    )
    async for client in serve(settings, connection, api_key=key):
        yield client


async def test_every_model_call_is_in_the_callers_ledger(client: AsyncClient) -> None:
    exchange = await _message(client, "time?\n/tool current_time")
    chat = await client.post(
        "/v1/chat/completions",
        json={"model": "agent", "messages": [{"role": "user", "content": "hi"}]},
    )

    report = await _usage(client)
    theirs = await _usage(client, headers=THEIRS)

    assert chat.status_code == 200
    [day] = report["days"]
    assert (day["day"], day["provider"], day["model"]) == (
        datetime.now(UTC).date().isoformat(),
        "echo",
        "echo",
    )
    # Two model calls of the message's turn, one of the chat completion's.
    assert day["calls"] == 3
    prompt = exchange["usage"]["prompt_tokens"] + chat.json()["usage"]["prompt_tokens"]
    assert day["prompt_tokens"] == prompt
    # The offline model costs nothing, and is priced.
    assert (day["cost_usd"], day["unpriced_calls"], report["cost_usd"]) == ("0", 0, "0")
    assert theirs["days"] == []


@pytest.fixture
def priced(tmp_path: Path, migrated: str, redis_url: str, fake_openai: FakeOpenAI) -> Any:
    """A client factory: the openai provider at the fake, as `model`, with spend.prices;
    one key for all the clients of a test."""

    key = f"spend-{uuid.uuid4().hex}"

    async def client_for(
        connection: AsyncConnection, model: str, prices: dict[str, Any] | None = None
    ) -> AsyncIterator[AsyncClient]:
        llm = {"provider": "openai", "model": model, "base_url": fake_openai.base_url}
        spend = {"prices": prices or {}}
        served = _serve(tmp_path, migrated, redis_url, connection, key, llm=llm, spend=spend)
        async for client in served:
            yield client

    return client_for


async def test_a_known_model_costs_what_the_price_table_says(
    priced: Any, connection: AsyncConnection
) -> None:
    async for client in priced(connection, "gpt-4o-mini"):
        await _message(client, "hello")
        report = await _usage(client)
        metrics = await scrape(client)

    expected = calc_price(
        Usage(input_tokens=USAGE["prompt_tokens"], output_tokens=USAGE["completion_tokens"]),
        model_ref="gpt-4o-mini",
        provider_id="openai",
    ).total_price
    [day] = report["days"]
    assert (day["provider"], day["model"], day["calls"]) == ("openai", "gpt-4o-mini", 1)
    assert expected > 0
    assert Decimal(day["cost_usd"]) == Decimal(report["cost_usd"]) == expected
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    assert sample(metrics, "llm_cost_usd_total", **labels) == pytest.approx(float(expected))


async def test_a_model_without_a_price_is_recorded_without_a_cost_until_priced(
    priced: Any, connection: AsyncConnection
) -> None:
    async for client in priced(connection, "test-model"):
        await _message(client, "hello")
        unpriced = (await _usage(client))["days"]
    prices = {"openai:test-model": {"input": 1, "output": 2}}
    async for client in priced(connection, "test-model", prices):
        await _message(client, "hello again")
        both = (await _usage(client))["days"]

    assert [(d["calls"], d["unpriced_calls"], d["cost_usd"]) for d in unpriced] == [(1, 1, "0")]
    # $1 and $2 per million tokens: 7 prompt and 3 completion tokens.
    cost = Decimal(7 * 1 + 3 * 2) / 1_000_000
    assert [(d["calls"], d["unpriced_calls"]) for d in both] == [(2, 1)]
    assert Decimal(both[0]["cost_usd"]) == cost


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"mistral:large": {"input": 1, "output": 1}}, "is not provider:model"),
        ({"openai": {"input": 1, "output": 1}}, "is not provider:model"),
        ({"openai:x": {"input": -1, "output": 1}}, "greater than or equal to 0"),
    ],
)
def test_a_bad_price_is_refused(prices: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AppConfig.model_validate({"spend": {"prices": prices}})


@pytest.mark.parametrize("days", [0, 93, "x"])
async def test_a_bad_span_is_a_422(client: AsyncClient, days: object) -> None:
    response = await client.get("/v1/usage", params={"days": str(days)})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "days"]

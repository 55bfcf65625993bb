import asyncio
import time
from pathlib import Path

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import OTHER_API_KEY, make_settings, serve


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer "],
    ids=["missing", "wrong-key", "wrong-scheme", "empty"],
)
async def test_api_requires_a_valid_key(client: AsyncClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    client.headers.pop("Authorization")

    response = await client.get("/v1/conversations", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["detail"]


async def test_every_configured_key_is_accepted(client: AsyncClient) -> None:
    response = await client.get(
        "/v1/conversations", headers={"Authorization": f"Bearer {OTHER_API_KEY}"}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("config_overrides", [{"rate_limit": {"requests": 3}}])
async def test_rate_limit_answers_429_with_retry_after(client: AsyncClient) -> None:
    statuses = [(await client.get("/v1/conversations")).status_code for _ in range(4)]
    other_key = await client.get(
        "/v1/conversations", headers={"Authorization": f"Bearer {OTHER_API_KEY}"}
    )
    limited = await client.get("/v1/conversations")

    assert statuses == [200, 200, 200, 429]
    assert other_key.status_code == 200
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "rate limit exceeded: 3 requests per 60 s" in limited.json()["detail"]


@pytest.mark.parametrize("config_overrides", [{"rate_limit": {"requests": 2, "window_seconds": 2}}])
async def test_rate_limit_holds_across_a_window_edge(client: AsyncClient) -> None:
    # Just before a multiple of the window (where a fixed window would start afresh)...
    await asyncio.sleep(2 - time.time() % 2 + 1.7)
    before_edge = [(await client.get("/v1/conversations")).status_code for _ in range(2)]
    await asyncio.sleep(0.5)
    # ...and just after it: the last 2 s still hold 2 requests.
    after_edge = await client.get("/v1/conversations")

    assert before_edge == [200, 200]
    assert after_edge.status_code == 429
    assert after_edge.headers["retry-after"] in {"1", "2"}


@pytest.mark.parametrize("config_overrides", [{"rate_limit": {"requests": 1}}])
async def test_rate_limit_keys_expire_with_their_window(client: AsyncClient, redis: Redis) -> None:
    await client.get("/v1/conversations")

    keys = [key async for key in redis.scan_iter("ratelimit:*")]
    assert len(keys) == 1
    assert 0 < await redis.ttl(keys[0]) <= 60


async def test_rate_limiter_fails_open_while_redis_is_down(
    tmp_path: Path, migrated: str, connection: AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, migrated, "redis://:secret@127.0.0.1:1/0")
    async for client in serve(settings, connection):
        response = await client.get("/v1/conversations")

    assert response.status_code == 200
    assert "rate limiter unavailable; request allowed" in caplog.messages

"""A conversation is read in pages of its newest messages: a thread of months is never sent
whole, and every message is reached by paging back, in order, once."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.conversations.models import Message


async def _conversation_of(client: AsyncClient, connection: AsyncConnection, count: int) -> str:
    """A conversation holding `count` messages, two at a time written at the same instant (as
    a step's call and result can be), so that the order's tie-break on id is in every page."""
    conversation: str = (await client.post("/v1/conversations", json={"title": "long"})).json()[
        "id"
    ]
    start = datetime.now(UTC) - timedelta(hours=1)
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "conversation_id": uuid.UUID(conversation),
            "role": ("user", "assistant")[n % 2],
            "content": f"message {n}",
            "file_ids": [],
            "created_at": start + timedelta(milliseconds=n // 2),
        }
        for n in range(count)
    ]
    if rows:
        await connection.execute(insert(Message), rows)
    return conversation


async def _read(client: AsyncClient, conversation: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/conversations/{conversation}", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _in_order(messages: list[dict[str, Any]]) -> bool:
    keys = [(datetime.fromisoformat(m["created_at"]), uuid.UUID(m["id"])) for m in messages]
    return keys == sorted(keys)


async def test_a_long_conversation_is_read_newest_first_in_pages_back_to_its_start(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    conversation = await _conversation_of(client, connection, 250)

    # 99: the page's first message is half of a pair written at one instant.
    newest = await _read(client, conversation, limit=99)
    earlier = await _read(client, conversation, before=newest["messages"][0]["id"])
    first = await _read(client, conversation, before=earlier["messages"][0]["id"], limit=1000)

    assert [len(p["messages"]) for p in (newest, earlier, first)] == [99, 100, 51]
    assert [p["has_earlier_messages"] for p in (newest, earlier, first)] == [True, True, False]
    everything = first["messages"] + earlier["messages"] + newest["messages"]
    assert _in_order(everything)
    assert len({m["id"] for m in everything}) == 250
    assert {m["content"] for m in everything} == {f"message {n}" for n in range(250)}


@pytest.mark.parametrize(("count", "earlier"), [(0, False), (5, False), (6, True)])
async def test_earlier_messages_are_announced_only_when_there_are_some(
    client: AsyncClient, connection: AsyncConnection, count: int, earlier: bool
) -> None:
    conversation = await _conversation_of(client, connection, count)

    page = await _read(client, conversation, limit=5)

    assert len(page["messages"]) == min(count, 5)
    assert page["has_earlier_messages"] is earlier
    assert _in_order(page["messages"])


async def test_before_must_be_a_message_of_this_conversation(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    conversation = await _conversation_of(client, connection, 3)
    other = await _conversation_of(client, connection, 3)
    others_message = (await _read(client, other))["messages"][0]["id"]

    for before in (str(uuid.uuid4()), others_message):
        response = await client.get(f"/v1/conversations/{conversation}", params={"before": before})

        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "before"]
        assert error["msg"] == f"message {before} is not in this conversation"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"before": "not-an-id"}])
async def test_page_bounds_are_enforced(
    client: AsyncClient, connection: AsyncConnection, params: dict[str, Any]
) -> None:
    conversation = await _conversation_of(client, connection, 0)

    response = await client.get(f"/v1/conversations/{conversation}", params=params)

    assert response.status_code == 422

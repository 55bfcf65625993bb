import uuid
from typing import Any, cast

import pytest
from httpx import AsyncClient
from sqlalchemy import Index, String, Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.conversations import service
from app.core.db import CreatedAtMixin, IdMixin, insert_new, insert_once
from tests.sse import events

SYSTEM_PROMPT = "You are a helpful assistant."


async def _conversation(client: AsyncClient, title: str | None = "Support") -> dict[str, Any]:
    response = await client.post("/v1/conversations", json={"title": title})
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def test_create_and_get_a_conversation(client: AsyncClient) -> None:
    created = await _conversation(client, "Billing question")

    fetched = await client.get(f"/v1/conversations/{created['id']}")

    assert fetched.status_code == 200
    assert fetched.json()["title"] == "Billing question"
    assert fetched.json()["messages"] == []


async def test_list_is_paginated_newest_first(client: AsyncClient) -> None:
    # The database may hold older rows (a shared test stack): count relative to them.
    existing = (await client.get("/v1/conversations")).json()["total"]
    ids = [(await _conversation(client, f"c{i}"))["id"] for i in range(5)]

    first = (await client.get("/v1/conversations", params={"limit": 2})).json()
    rest = (await client.get("/v1/conversations", params={"limit": 2, "offset": 2})).json()

    assert first["total"] == existing + 5
    assert first["total_is_exact"] is True
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert [item["id"] for item in rest["items"]] == ids[::-1][2:4]


async def test_the_list_pages_back_by_before_to_its_oldest_conversation(
    client: AsyncClient,
) -> None:
    existing = (await client.get("/v1/conversations")).json()["total"]
    ids = [(await _conversation(client, f"c{i}"))["id"] for i in range(5)]

    pages = [(await client.get("/v1/conversations", params={"limit": 2})).json()]
    while pages[-1]["has_more"]:
        last = pages[-1]["items"][-1]["id"]
        params = {"limit": 2 if len(pages) < 3 else 100, "before": last}
        pages.append((await client.get("/v1/conversations", params=params)).json())
    seen = [item["id"] for page in pages for item in page["items"]]

    assert seen[:5] == ids[::-1]
    assert len(seen) == len(set(seen)) == existing + 5
    assert [len(page["items"]) for page in pages[:2]] == [2, 2]


async def test_a_list_before_an_unknown_conversation_is_refused(client: AsyncClient) -> None:
    unknown = uuid.uuid4()

    response = await client.get("/v1/conversations", params={"before": str(unknown)})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (
        ["query", "before"],
        f"conversation {unknown} not found",
    )


async def test_the_count_stops_at_its_limit_and_says_so(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "COUNT_LIMIT", 3)
    ids = [(await _conversation(client, f"c{i}"))["id"] for i in range(5)]

    page = (await client.get("/v1/conversations", params={"limit": 5})).json()

    assert (page["total"], page["total_is_exact"]) == (3, False)
    # Only the count stops: the page itself is whole.
    assert [item["id"] for item in page["items"]] == ids[::-1]


async def test_delete_removes_the_conversation_and_its_messages(client: AsyncClient) -> None:
    created = await _conversation(client)
    await client.post(f"/v1/conversations/{created['id']}/messages", json={"content": "hi"})

    deleted = await client.delete(f"/v1/conversations/{created['id']}")
    again = await client.get(f"/v1/conversations/{created['id']}")

    assert deleted.status_code == 204
    assert again.status_code == 404


async def test_message_round_trip_with_the_echo_provider(client: AsyncClient) -> None:
    created = await _conversation(client)

    response = await client.post(
        f"/v1/conversations/{created['id']}/messages", json={"content": "What is 2+2?"}
    )

    assert response.status_code == 201
    exchange = response.json()
    assert exchange["user_message"]["content"] == "What is 2+2?"
    assert exchange["assistant_message"]["role"] == "assistant"
    assert exchange["assistant_message"]["content"] == f"[{SYSTEM_PROMPT}] What is 2+2?"
    stored = (await client.get(f"/v1/conversations/{created['id']}")).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]


@pytest.mark.parametrize("config_overrides", [{"llm": {"system_prompt": "Answer in French."}}])
async def test_the_configured_system_prompt_reaches_the_model(client: AsyncClient) -> None:
    created = await _conversation(client)

    response = await client.post(
        f"/v1/conversations/{created['id']}/messages", json={"content": "Hello"}
    )

    assert response.json()["assistant_message"]["content"] == "[Answer in French.] Hello"


async def test_streaming_sends_tokens_and_stores_the_whole_reply(client: AsyncClient) -> None:
    created = await _conversation(client)

    response = await client.post(
        f"/v1/conversations/{created['id']}/messages",
        json={"content": "stream this please"},
        headers={"Accept": "text/event-stream"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    received = events(response.text)
    tokens = [data["content"] for name, data in received if name == "token"]
    assert len(tokens) > 1
    assert "".join(tokens) == f"[{SYSTEM_PROMPT}] stream this please"
    name, done = received[-1]
    assert name == "done"
    assert done["assistant_message"]["content"] == "".join(tokens)
    stored = (await client.get(f"/v1/conversations/{created['id']}")).json()["messages"]
    assert [m["content"] for m in stored] == ["stream this please", "".join(tokens)]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"content": ""}, "at least 1 character"),
        ({"content": 42}, "valid string"),
        ({"content": "x", "file_ids": ["not-a-uuid"]}, "valid UUID"),
        ({"content": "x", "extra": 1}, "Extra inputs"),
        ({}, "Field required"),
        ({"content": "nul\u0000byte"}, "must not contain NUL characters"),
        ({"content": "x" * 32_001}, "at most 32000 characters"),
        ({"content": "x", "file_ids": [str(uuid.uuid4()) for _ in range(11)]}, "at most 10 items"),
    ],
    ids=["empty", "wrong-type", "bad-file-id", "unknown-field", "missing", "nul", "long", "files"],
)
async def test_bad_messages_get_422_and_store_nothing(
    client: AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    created = await _conversation(client)

    response = await client.post(f"/v1/conversations/{created['id']}/messages", json=body)

    assert response.status_code == 422
    assert fragment in response.text
    stored = (await client.get(f"/v1/conversations/{created['id']}")).json()["messages"]
    assert stored == []


async def test_malformed_json_gets_422(client: AsyncClient) -> None:
    response = await client.post(
        "/v1/conversations", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert "JSON decode error" in response.text


async def test_unknown_file_ids_are_refused_and_nothing_is_stored(client: AsyncClient) -> None:
    created = await _conversation(client)
    missing = str(uuid.uuid4())

    response = await client.post(
        f"/v1/conversations/{created['id']}/messages",
        json={"content": "see file", "file_ids": [missing]},
    )

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "unknown_file",
            "loc": ["body", "file_ids", 0],
            "msg": f"file {missing} not found",
            "input": missing,
        }
    ]
    stored = (await client.get(f"/v1/conversations/{created['id']}")).json()["messages"]
    assert stored == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/conversations/{id}"),
        ("DELETE", "/v1/conversations/{id}"),
        ("POST", "/v1/conversations/{id}/messages"),
    ],
)
async def test_unknown_conversation_gets_404(client: AsyncClient, method: str, path: str) -> None:
    unknown = uuid.uuid4()

    response = await client.request(
        method, path.format(id=unknown), json={"content": "hi"} if method == "POST" else None
    )

    assert response.status_code == 404
    assert response.json()["detail"] == f"conversation {unknown} not found"


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 2**63}]
)
async def test_pagination_bounds_are_enforced(client: AsyncClient, params: dict[str, int]) -> None:
    response = await client.get("/v1/conversations", params=params)

    assert response.status_code == 422


class _ProbeBase(DeclarativeBase):
    pass


class _Probe(IdMixin, CreatedAtMixin, _ProbeBase):
    """A table as a team would add one, or a column to one: defaults in Python and in SQL."""

    __tablename__ = "write_path_probe"
    __table_args__ = (
        Index("uq_write_path_probe_key", "key", unique=True, postgresql_where=text("key > ''")),
    )
    note: Mapped[str] = mapped_column(String(20), default="python default")
    kind: Mapped[str] = mapped_column(String(20), server_default="server default")
    key: Mapped[str | None] = mapped_column(String(20))


async def test_a_column_default_reaches_rows_written_either_way(
    maker: async_sessionmaker[AsyncSession], connection: AsyncConnection
) -> None:
    # Created in the test's transaction, and gone with it.
    await connection.run_sync(_ProbeBase.metadata.create_all)
    async with maker() as session:
        fast = await insert_new(session, _Probe())
        tracked = _Probe()
        session.add(tracked)
        await session.commit()
        stored = {
            row.id: (row.note, row.kind, row.created_at is not None)
            for row in await session.scalars(select(_Probe))
        }

    # The Core path (creates and interactive messages) and the ORM path (runs' steps) alike.
    assert stored == {
        fast.id: ("python default", "server default", True),
        tracked.id: ("python default", "server default", True),
    }
    assert (fast.note, fast.kind) == ("python default", "server default")


async def test_a_row_inserted_once_gets_its_defaults_and_its_twin_is_not_written(
    maker: async_sessionmaker[AsyncSession], connection: AsyncConnection
) -> None:
    await connection.run_sync(_ProbeBase.metadata.create_all)
    (unique,) = cast(Table, _Probe.__table__).indexes
    async with maker() as session:
        first = await insert_once(session, _Probe(key="k"), unique)
        twin = await insert_once(session, _Probe(key="k", note="twin"), unique)
        # Outside the index's WHERE: no conflict, both written.
        blanks = [await insert_once(session, _Probe(key=""), unique) for _ in "ab"]
        await session.commit()
        stored = {row.id: (row.note, row.kind) for row in await session.scalars(select(_Probe))}

    assert first is not None
    assert twin is None
    assert stored == {
        row.id: ("python default", "server default") for row in (first, *blanks) if row
    }
    assert len(stored) == 3

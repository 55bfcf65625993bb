"""Every row belongs to the key that created it; to any other key it is as absent as unknown."""

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from httpx import AsyncClient, Response
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.keys import ApiKey
from app.conversations.service import _RECENT, messages_query, page_query
from app.core.security import KeyRing, owner_of
from tests.conftest import OTHER_API_KEY, make_settings, serve

AS_OTHER = {"Authorization": f"Bearer {OTHER_API_KEY}"}
NOW = datetime.now(UTC)
INDEX_OF_MESSAGES = "ix_messages_conversation_id_created_at"


async def _rows_of_the_first_key(client: AsyncClient) -> tuple[str, str]:
    """A conversation with a message and a file attached, created with the client's key."""
    uploaded = await client.post("/v1/files", files={"file": ("a.txt", b"mine", "text/plain")})
    conversation = await client.post("/v1/conversations", json={"title": "mine"})
    file_id, conversation_id = uploaded.json()["id"], conversation.json()["id"]
    sent = await client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": "hello", "file_ids": [file_id]},
    )
    assert (uploaded.status_code, conversation.status_code, sent.status_code) == (201, 201, 201)
    return conversation_id, file_id


def _requests(conversation_id: str, file_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every /v1 request that names a row by its id."""
    return [
        ("GET", f"/v1/conversations/{conversation_id}", {}),
        ("POST", f"/v1/conversations/{conversation_id}/messages", {"json": {"content": "hi"}}),
        ("DELETE", f"/v1/conversations/{conversation_id}", {}),
        ("GET", f"/v1/files/{file_id}", {}),
        ("DELETE", f"/v1/files/{file_id}", {}),
    ]


async def test_another_keys_rows_answer_404_to_every_request(client: AsyncClient) -> None:
    conversation_id, file_id = await _rows_of_the_first_key(client)

    foreign = [
        await client.request(method, url, headers=AS_OTHER, **kwargs)
        for method, url, kwargs in _requests(conversation_id, file_id)
    ]
    mine = await client.get(f"/v1/conversations/{conversation_id}")
    download = await client.get(f"/v1/files/{file_id}")

    assert [response.status_code for response in foreign] == [404] * 5
    assert mine.status_code == 200
    assert [m["role"] for m in mine.json()["messages"]] == ["user", "assistant"]
    assert download.content == b"mine"


async def test_lists_and_counts_hold_only_the_callers_rows(client: AsyncClient) -> None:
    before = (await client.get("/v1/conversations", headers=AS_OTHER)).json()["total"]
    conversation_id, _ = await _rows_of_the_first_key(client)
    theirs = await client.post("/v1/conversations", json={"title": "B"}, headers=AS_OTHER)

    other_list = (await client.get("/v1/conversations", headers=AS_OTHER)).json()
    my_list = (await client.get("/v1/conversations", params={"limit": 100})).json()

    assert other_list["total"] == before + 1
    assert conversation_id not in [item["id"] for item in other_list["items"]]
    assert theirs.json()["id"] in [item["id"] for item in other_list["items"]]
    assert conversation_id in [item["id"] for item in my_list["items"]]
    assert theirs.json()["id"] not in [item["id"] for item in my_list["items"]]


def _without_id(response: Response, row_id: str) -> tuple[int, str, str | None]:
    return (
        response.status_code,
        response.text.replace(row_id, "<id>"),
        response.headers.get("content-type"),
    )


# What a client reads in a 404's documentation: the body every 404 carries.
NOT_FOUND_BODY = {
    "properties": {"detail": {"title": "Detail", "type": "string"}},
    "required": ["detail"],
    "title": "NotFound",
    "type": "object",
}

# The path parameter that names a row of each kind.
ROW_PARAMETERS = {"conversation": "{conversation_id}", "run": "{run_id}", "file": "{file_id}"}


async def _openapi_paths(client: AsyncClient) -> dict[str, Any]:
    return cast(dict[str, Any], (await client.get("/openapi.json")).json()["paths"])


def _routes_naming_a_row(paths: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every (method, path, kind of row) of the api whose path names a row, from its OpenAPI."""
    return [
        (method.upper(), path, kind)
        for path, operations in paths.items()
        for kind, parameter in ROW_PARAMETERS.items()
        if parameter in path
        for method in operations
    ]


async def test_every_route_naming_a_row_answers_a_foreign_id_as_an_unknown_one(
    client: AsyncClient,
) -> None:
    conversation_id, file_id = await _rows_of_the_first_key(client)
    run = await client.post(f"/v1/conversations/{conversation_id}/runs", json={"content": "later"})
    mine = {"conversation": conversation_id, "file": file_id, "run": run.json()["id"]}
    unknown = {kind: str(uuid.uuid4()) for kind in mine}
    checked = set()

    for method, path, kind in _routes_naming_a_row(await _openapi_paths(client)):
        checked.add(kind)
        parameter = ROW_PARAMETERS[kind]
        # No body: whose the row is is answered before anything the request carries.
        foreign_url, unknown_url = (path.replace(parameter, ids[kind]) for ids in (mine, unknown))
        foreign = await client.request(method, foreign_url, headers=AS_OTHER)
        never = await client.request(method, unknown_url, headers=AS_OTHER)

        assert foreign.status_code == 404, (method, path)
        assert foreign.json()["detail"] == f"{kind} {mine[kind]} not found"
        assert _without_id(foreign, mine[kind]) == _without_id(never, unknown[kind]), path
    assert checked == set(mine)
    assert (await client.get(f"/v1/runs/{mine['run']}")).json()["status"] == "queued"


async def test_every_route_naming_a_row_documents_its_404(client: AsyncClient) -> None:
    paths = await _openapi_paths(client)
    routes = _routes_naming_a_row(paths)

    documented = {
        (method, path): paths[path][method.lower()]["responses"].get("404", {})
        for method, path, _ in routes
    }

    assert len(documented) == 11
    assert {
        route: (response.get("description"), response.get("content"))
        for route, response in documented.items()
    } == {
        (method, path): (
            f"No {kind} of this key with that id",
            {"application/json": {"schema": NOT_FOUND_BODY}},
        )
        for method, path, kind in routes
    }


async def test_a_message_may_attach_only_the_callers_files(client: AsyncClient) -> None:
    _, file_id = await _rows_of_the_first_key(client)
    unknown_id = str(uuid.uuid4())
    theirs = (await client.post("/v1/conversations", json={}, headers=AS_OTHER)).json()["id"]
    url = f"/v1/conversations/{theirs}/messages"

    foreign = await client.post(
        url, json={"content": "read it", "file_ids": [file_id]}, headers=AS_OTHER
    )
    unknown = await client.post(
        url, json={"content": "read it", "file_ids": [unknown_id]}, headers=AS_OTHER
    )
    stored = (await client.get(f"/v1/conversations/{theirs}", headers=AS_OTHER)).json()

    assert foreign.status_code == 422
    assert foreign.json()["detail"][0]["msg"] == f"file {file_id} not found"
    assert _without_id(foreign, file_id) == _without_id(unknown, unknown_id)
    assert stored["messages"] == []


async def test_a_named_key_keeps_its_rows_when_its_value_is_rotated(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection
) -> None:
    before = make_settings(tmp_path, migrated, redis_url, api_keys="mobile:old-value")
    after = make_settings(tmp_path, migrated, redis_url, api_keys="mobile:new-value")

    async for client in serve(before, connection, api_key="old-value"):
        created = await client.post("/v1/conversations", json={"title": "kept"})
    async for client in serve(after, connection, api_key="new-value"):
        fetched = await client.get(f"/v1/conversations/{created.json()['id']}")
        old = await client.get("/v1/conversations", headers={"Authorization": "Bearer old-value"})

    assert fetched.status_code == 200
    assert fetched.json()["title"] == "kept"
    assert old.status_code == 401


def test_an_unnamed_keys_owner_is_an_hmac_that_needs_the_secret_key() -> None:
    key = ApiKey(name=None, value=SecretStr("plain-key"))

    owner = owner_of(key, SecretStr("secret-one"))

    assert owner.startswith("key:")
    assert "plain-key" not in owner
    assert owner == owner_of(key, SecretStr("secret-one"))
    assert owner != owner_of(key, SecretStr("secret-two"))
    assert owner_of(ApiKey(name="mobile", value=SecretStr("plain-key")), SecretStr("s")) == "mobile"


def test_the_key_ring_finds_the_owner_of_any_configured_value() -> None:
    keys = (
        ApiKey(name="mobile", value=SecretStr("old")),
        ApiKey(name="mobile", value=SecretStr("new")),
        ApiKey(name=None, value=SecretStr("bare")),
    )
    ring = KeyRing.build(keys, SecretStr("s"))

    assert [ring.owner(value) for value in ("old", "new", "bare", "nope", "")] == [
        "mobile",
        "mobile",
        owner_of(keys[2], SecretStr("s")),
        None,
        None,
    ]


async def test_values_of_one_named_key_share_its_rate_limit(
    tmp_path: Path, migrated: str, redis_url: str, redis: Redis, connection: AsyncConnection
) -> None:
    settings = make_settings(
        tmp_path,
        migrated,
        redis_url,
        api_keys="mobile:old,mobile:new,web:other",
        rate_limit={"requests": 2},
    )

    async for client in serve(settings, connection, api_key="old"):
        statuses = [
            (
                await client.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"})
            ).status_code
            for key in ("old", "new", "old", "other")
        ]

    assert statuses == [200, 200, 429, 200]


async def test_a_page_after_another_keys_conversation_is_refused_as_after_an_unknown_one(
    client: AsyncClient,
) -> None:
    theirs = (await client.post("/v1/conversations", json={"title": "theirs"})).json()["id"]
    unknown = str(uuid.uuid4())

    answers = [
        (await client.get("/v1/conversations", params={"before": id_}, headers=AS_OTHER)).json()
        for id_ in (theirs, unknown)
    ]

    assert [a["detail"][0]["msg"] for a in answers] == [
        f"conversation {id_} not found" for id_ in (theirs, unknown)
    ]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (page_query(owner="mobile", limit=20, offset=0), "ix_conversations_owner_created_at"),
        (
            page_query(owner="mobile", limit=20, offset=0, before=(NOW, uuid.uuid4())),
            "ix_conversations_owner_created_at",
        ),
        (messages_query(conversation_id=uuid.uuid4(), limit=100), INDEX_OF_MESSAGES),
        (
            messages_query(conversation_id=uuid.uuid4(), limit=100, before=(NOW, uuid.uuid4())),
            INDEX_OF_MESSAGES,
        ),
        (_RECENT.params(conversation_id=uuid.uuid4(), limit=50), INDEX_OF_MESSAGES),
    ],
    ids=["conversations", "conversations before", "messages", "messages before", "history"],
)
async def test_pages_and_a_turns_history_are_read_in_order_from_an_index(
    connection: AsyncConnection, query: Select[Any], index: str
) -> None:
    sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})

    # On a near-empty table PostgreSQL would rightly scan it; ask what it does at scale.
    await connection.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(row[0] for row in await connection.execute(text(f"EXPLAIN {sql}")))

    assert f"Index Scan Backward using {index}" in plan
    assert "Sort" not in plan

"""The agent as an MCP server at /mcp, driven by the `mcp` SDK's own client over streamable
HTTP: in-process (an httpx2 ASGI transport, in the test's transaction), and, for one service
calling another as a tool, on a real local port."""

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from httpx import AsyncClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp

from app.config.settings import Settings
from app.flows.execution import Executor
from app.main import create_app
from tests.conftest import API_KEY, OTHER_API_KEY, make_settings, running_app, serve

URL = "http://testserver/mcp"
SYSTEM = "[You are a helpful assistant.] "
UNAUTHORIZED = "missing or invalid API key; send Authorization: Bearer <key>"
HANDSHAKE, MODERN = "2025-11-25", "2026-07-28"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": HANDSHAKE,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}

type Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
async def app(settings: Settings, connection: AsyncConnection) -> AsyncIterator[ASGIApp]:
    async for running in running_app(settings, connection):
        yield running


def _http(app: ASGIApp, key: str | None) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), headers=headers)


@pytest.fixture
def connect(app: ASGIApp) -> Connect:
    """An MCP client session with the app, as one key, in one protocol mode ("legacy": the
    initialize handshake; "auto": the SDK's default, which probes for the newest revision)."""

    @asynccontextmanager
    async def session(key: str = API_KEY, mode: str = "legacy") -> AsyncIterator[Client]:
        async with (
            _http(app, key) as http,
            Client(streamable_http_client(URL, http_client=http), mode=mode) as client,
        ):
            yield client

    return session


def _text(result: CallToolResult) -> str:
    assert all(isinstance(block, TextContent) for block in result.content)
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def _call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that succeeds; return its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def _refused(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that fails; return its error text, after the SDK's own preamble."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    preamble, _, reason = _text(result).partition(": ")
    assert preamble == f"Error executing tool {tool}"
    return reason


async def test_tools_are_listed_with_their_input_schemas(connect: Connect) -> None:
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"ask", "start_run", "get_run", "approve"}
    for name in ("ask", "start_run"):
        schema = tools[name].input_schema
        assert schema["required"] == ["message"]
        assert schema["properties"]["message"]["type"] == "string"
    assert tools["get_run"].input_schema["properties"]["run_id"]["format"] == "uuid"
    approve = tools["approve"].input_schema
    assert set(approve["required"]) == {"run_id", "tool_call_id", "approved"}
    assert approve["properties"]["approved"]["type"] == "boolean"
    # Answers come as data too: the run's fields, and ask's answer with its conversation.
    assert tools["ask"].output_schema is not None
    assert "answer" in tools["ask"].output_schema["properties"]


async def test_ask_answers_with_a_stored_turn(connect: Connect, client: AsyncClient) -> None:
    async with connect() as mcp:
        result = await mcp.call_tool("ask", {"message": "hello over MCP"})
    assert not result.is_error
    assert _text(result) == SYSTEM + "hello over MCP"
    assert result.structured_content is not None
    assert result.structured_content["answer"] == SYSTEM + "hello over MCP"
    # Stored as POST .../messages stores it, in a conversation of the same key.
    conversation_id = result.structured_content["conversation_id"]
    stored = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert [(m["role"], m["content"]) for m in stored["messages"]] == [
        ("user", "hello over MCP"),
        ("assistant", SYSTEM + "hello over MCP"),
    ]


async def test_ask_refuses_what_rest_refuses(connect: Connect, client: AsyncClient) -> None:
    # Counted before and after: tests that commit (their own engine) leave conversations.
    before = (await client.get("/v1/conversations")).json()["total"]
    async with connect() as mcp:
        empty = await _refused(mcp, "ask", message="")
        started = await _refused(mcp, "start_run", message="")
    assert "at least 1 character" in empty
    assert started == empty
    # Nothing stored: not even the conversation.
    assert (await client.get("/v1/conversations")).json()["total"] == before


async def test_a_run_is_started_and_read(connect: Connect, executor: Executor) -> None:
    async with connect() as client:
        started = await _call(client, "start_run", message="in the background")
        assert started["status"] == "queued"
        assert started["answer"] is None
        await executor.execute(uuid.UUID(started["run_id"]))
        finished = await _call(client, "get_run", run_id=started["run_id"])
    assert finished["status"] == "succeeded"
    assert finished["stop_reason"] == "completed"
    assert finished["answer"] == SYSTEM + "in the background"
    assert finished["pending_approvals"] == []


async def test_another_keys_run_is_not_found(connect: Connect) -> None:
    async with connect() as client:
        mine = await _call(client, "start_run", message="mine")
    unknown = str(uuid.uuid4())
    async with connect(OTHER_API_KEY) as other:
        # An unknown id and another key's are answered alike, as REST's 404 does.
        assert await _refused(other, "get_run", run_id=mine["run_id"]) == (
            f"run {mine['run_id']} not found"
        )
        assert await _refused(other, "get_run", run_id=unknown) == f"run {unknown} not found"
        assert "Input should be a valid UUID" in await _refused(other, "get_run", run_id="r1")
        refused = await _refused(
            other, "approve", run_id=mine["run_id"], tool_call_id="x", approved=True
        )
        assert refused == f"run {mine['run_id']} not found"


@pytest.mark.parametrize("config_overrides", [{"agent": {"require_approval": ["current_time"]}}])
async def test_a_call_is_approved_through_approve(connect: Connect, executor: Executor) -> None:
    async with connect() as client:
        started = await _call(client, "start_run", message="the time?\n/tool current_time")
        await executor.execute(uuid.UUID(started["run_id"]))
        waiting = await _call(client, "get_run", run_id=started["run_id"])
        assert waiting["status"] == "awaiting_approval"
        [call] = waiting["pending_approvals"]
        assert call["name"] == "current_time"
        wrong = await _refused(
            client, "approve", run_id=started["run_id"], tool_call_id="nope", approved=True
        )
        assert wrong == "tool call nope is not awaiting approval"
        decided = await _call(
            client, "approve", run_id=started["run_id"], tool_call_id=call["id"], approved=True
        )
        assert decided["status"] == "queued"
        await executor.execute(uuid.UUID(started["run_id"]))
        finished = await _call(client, "get_run", run_id=started["run_id"])
        again = await _refused(
            client, "approve", run_id=started["run_id"], tool_call_id=call["id"], approved=True
        )
    assert finished["status"] == "succeeded"
    assert finished["answer"].startswith(SYSTEM + "the time?")
    assert "current_time: " in finished["answer"]
    assert again == f"run {started['run_id']} is succeeded, not awaiting approval"


@pytest.mark.parametrize("key", [None, "a-wrong-key"])
async def test_no_key_or_a_wrong_key_is_refused_before_mcp(app: ASGIApp, key: str | None) -> None:
    async with _http(app, key) as http:
        answered = await http.post(URL, json=INITIALIZE, headers=ACCEPT)
    assert answered.status_code == 401
    assert answered.json() == {"detail": UNAUTHORIZED}
    assert answered.headers["www-authenticate"] == "Bearer"
    assert "mcp-session-id" not in answered.headers


@pytest.mark.parametrize(
    "config_overrides", [{"rate_limit": {"requests": 2, "window_seconds": 60}}]
)
async def test_the_rate_limit_covers_mcp(app: ASGIApp) -> None:
    async with _http(app, API_KEY) as http:
        answers = [await http.post(URL, json=INITIALIZE, headers=ACCEPT) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "rate limit exceeded" in answers[2].json()["detail"]


@pytest.mark.parametrize("config_overrides", [{"requests": {"max_json_bytes": 2048}}])
async def test_the_body_size_bound_covers_mcp(app: ASGIApp) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ask", "arguments": {"message": "x" * 4096}},
    }
    async with _http(app, API_KEY) as http:
        answered = await http.post(URL, json=call, headers=ACCEPT)
    assert answered.status_code == 413
    assert answered.json() == {"detail": "request body is larger than the limit of 2048 bytes"}


@pytest.mark.parametrize(
    "config_overrides",
    [{"spend": {"budgets": {"default": {"tokens_per_day": 0}}}}],
)
async def test_a_key_over_its_budget_is_refused_as_rest_refuses_it(
    connect: Connect, client: AsyncClient
) -> None:
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    rest = await client.post(f"/v1/conversations/{conversation}/messages", json={"content": "hi"})
    assert rest.status_code == 429
    async with connect() as mcp:
        asked = await _refused(mcp, "ask", message="hi")
        started = await _refused(mcp, "start_run", message="hi")
    assert asked == started == rest.json()["detail"]
    assert "budget" in asked


async def test_the_handshake_revision_is_answered_statelessly(
    app: ASGIApp, connect: Connect
) -> None:
    async with connect(mode="legacy") as client:
        assert client.protocol_version == HANDSHAKE
        assert _text(await client.call_tool("ask", {"message": "hi"})) == SYSTEM + "hi"
    # Stateless (the default): no session to hold, so any api process can answer.
    async with _http(app, API_KEY) as http:
        answered = await http.post(URL, json=INITIALIZE, headers=ACCEPT)
    assert answered.status_code == 200
    assert answered.json()["result"]["protocolVersion"] == HANDSHAKE
    assert "mcp-session-id" not in answered.headers


async def test_the_stateless_revision_is_answered(connect: Connect) -> None:
    async with connect(mode="auto") as client:
        assert client.protocol_version == MODERN
        assert _text(await client.call_tool("ask", {"message": "hi"})) == SYSTEM + "hi"
    async with connect(mode=MODERN) as client:
        assert client.protocol_version == MODERN
        listed = await client.list_tools()
    assert len(listed.tools) == 4


@pytest.mark.parametrize("config_overrides", [{"mcp_server": {"stateless": False}}])
async def test_a_session_is_held_and_kept_to_its_key(app: ASGIApp, connect: Connect) -> None:
    async with connect(mode="legacy") as client:
        assert client.protocol_version == HANDSHAKE
        assert _text(await client.call_tool("ask", {"message": "hi"})) == SYSTEM + "hi"
    async with _http(app, API_KEY) as http:
        opened = await http.post(URL, json=INITIALIZE, headers=ACCEPT)
    session = {
        "Mcp-Session-Id": opened.headers["mcp-session-id"],
        "Mcp-Protocol-Version": HANDSHAKE,
    }
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    async with _http(app, OTHER_API_KEY) as other:
        # Another key presenting the session's id: answered as an unknown session.
        foreign = await other.post(URL, json=ping, headers=ACCEPT | session)
    async with _http(app, API_KEY) as http:
        own = await http.post(URL, json=ping, headers=ACCEPT | session)
    assert foreign.status_code == 404
    assert own.status_code == 200


async def test_no_stream_is_offered(app: ASGIApp) -> None:
    # Each call is answered in one JSON body; the notification stream is not offered.
    async with _http(app, API_KEY) as http:
        answered = await http.get(URL, headers={"Accept": "text/event-stream"})
        called = await http.post(URL, json=INITIALIZE, headers=ACCEPT)
    assert answered.status_code == 405
    assert called.headers["content-type"] == "application/json"


@pytest.mark.parametrize("config_overrides", [{"mcp_server": {"enabled": False}}])
async def test_mcp_can_be_turned_off(app: ASGIApp) -> None:
    async with _http(app, API_KEY) as http:
        answered = await http.post(URL, json=INITIALIZE, headers=ACCEPT)
    assert answered.status_code == 404


@asynccontextmanager
async def _on_a_port(settings: Settings) -> AsyncIterator[str]:
    """The app on a free port of the loopback, in this event loop; yields its /mcp URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the peer service did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_one_service_calls_another_as_an_mcp_tool(
    tmp_path: Path, migrated: str, redis_url: str, redis: Redis, connection: AsyncConnection
) -> None:
    # The peer answers with its own prompt, so its reply tells whose it is. Its key is its
    # own: what it stores is committed (it has its own engine), under an owner no test reads.
    peer_key = f"peer-{uuid.uuid4().hex}"
    peer = make_settings(
        tmp_path / "peer",
        migrated,
        redis_url,
        api_keys=f"{peer_key}:{peer_key}",
        llm={"system_prompt": "I am the peer."},
    )
    token_file = tmp_path / "peer_key"
    token_file.write_text(peer_key)
    async with _on_a_port(peer) as url:
        entry = {"name": "peer", "url": url, "token_file": str(token_file), "tools": ["ask"]}
        caller = make_settings(tmp_path, migrated, redis_url, agent={"mcp_servers": [entry]})
        async for client in serve(caller, connection):
            conversation = (await client.post("/v1/conversations", json={})).json()["id"]
            arguments = json.dumps({"message": "hello, peer"})
            sent = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": f"/tool peer.ask {arguments}"},
            )
    assert sent.status_code == 201, sent.text
    [call, result, reply] = sent.json()["steps"]
    assert json.loads(call["tool_calls"][0]["arguments"]) == {"message": "hello, peer"}
    assert result["content"] == "[I am the peer.] hello, peer"
    assert reply["content"].endswith("peer.ask: [I am the peer.] hello, peer")

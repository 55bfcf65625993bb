"""Tools of MCP servers: a real MCP server (tests/mcp_server.py) reached over streamable HTTP.

The echo provider calls one tool per `/tool NAME {json}` line; MCP tools are "server.tool".
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.errors import ConfigError
from app.config.loading import load_settings
from app.llm.base import ChatMessage, ToolSpec
from app.llm.openai_compatible import OpenAICompatibleProvider
from tests.conftest import free_port, make_settings, new_conversation_id, serve
from tests.fake_openai import FakeOpenAI
from tests.mcp_server import McpTestServer
from tests.metrics import sample, scrape

TOKEN = "s3cret-mcp-token"
ALLOWED = ["add", "repeat", "wait"]
# The settings every load needs besides config.yaml.
REQUIRED = {
    "database_url": "postgresql://app@db/app",
    "redis_url": "redis://redis:6379/0",
    "api_keys": "a-key",
    "secret_key": "a-secret",
}


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    """One server for the module, that wants TOKEN; tests that stop a server start their own."""
    with McpTestServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "mcp_token"
    path.write_text(TOKEN + "\n")
    return path


def docs(url: str, token_file: Path | None, tools: list[str] = ALLOWED) -> dict[str, Any]:
    """config.yaml's entry for the server docs."""
    entry = {"name": "docs", "url": url, "tools": tools}
    return entry | ({"token_file": str(token_file)} if token_file else {})


type Start = Callable[..., AsyncIterator[AsyncClient]]


@pytest.fixture
def start(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection, redis: Redis
) -> Start:
    """Start an api with these MCP servers (and other agent or llm settings) for `async for`;
    Redis is flushed first (rate limits)."""

    def started(
        *servers: dict[str, Any], llm: dict[str, Any] | None = None, **agent: Any
    ) -> AsyncIterator[AsyncClient]:
        agent["mcp_servers"] = list(servers)
        config: dict[str, Any] = {"agent": agent} | ({"llm": llm} if llm else {})
        return serve(make_settings(tmp_path, migrated, redis_url, **config), connection)

    return started


@pytest.fixture
async def client(
    start: Start, mcp_server: McpTestServer, token_file: Path
) -> AsyncIterator[AsyncClient]:
    async for client in start(docs(mcp_server.url, token_file)):
        yield client


def call(name: str, **arguments: Any) -> str:
    return f"/tool {name} {json.dumps(arguments)}"


async def tool_results(client: AsyncClient, *lines: str) -> list[str]:
    """Send the lines as one message; return each tool result the turn stored."""
    conversation = await new_conversation_id(client)
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "\n".join(lines)}
    )
    assert response.status_code == 201, response.text
    exchange = response.json()
    assert exchange["steps"][-1]["content"] == exchange["assistant_message"]["content"]
    return [step["content"] for step in exchange["steps"] if step["role"] == "tool"]


async def test_a_turn_calls_an_mcp_tool_and_its_result_reaches_the_reply(
    client: AsyncClient,
) -> None:
    conversation = await new_conversation_id(client)
    response = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "Sum it\n" + call("docs.add", a=1, b=2)},
    )

    steps = response.json()["steps"]
    assert steps[0]["tool_calls"][0]["name"] == "docs.add"
    assert steps[1]["content"] == "3"
    assert "docs.add: 3" in response.json()["assistant_message"]["content"]
    assert sample(await scrape(client), "agent_tool_calls_total", tool="docs.add", outcome="ok")


async def test_tools_outside_the_allowlist_cannot_be_called(
    start: Start,
    mcp_server: McpTestServer,
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = docs(mcp_server.url, token_file, tools=["add", "substract"])
    async for client in start(entry):
        results = await tool_results(client, call("docs.secret"), call("docs.add", a=2, b=2))

    assert results == ["error: no tool named 'docs.secret'", "4"]
    assert "MCP server docs offers add" in caplog.messages
    assert "MCP server docs lists no tool substract" in caplog.messages


async def test_a_failing_mcp_tool_answers_the_model_and_the_turn_goes_on(
    client: AsyncClient,
) -> None:
    results = await tool_results(client, call("docs.add", a="x"), "/tool docs.add [1]")

    assert results[0].startswith("error: docs.add failed:")
    assert "validation error" in results[0]
    assert results[1] == "error: bad arguments for docs.add: not a JSON object (a JSON list)"


async def test_a_long_result_is_cut_and_a_huge_one_refused(
    start: Start,
    mcp_server: McpTestServer,
    token_file: Path,
) -> None:
    entry = docs(mcp_server.url, token_file)
    limits = {"max_tool_result_chars": 1000, "mcp_max_response_bytes": 50_000}
    async for client in start(entry, **limits):
        results = await tool_results(
            client,
            call("docs.repeat", text="ab", times=5_000),
            call("docs.repeat", text="x", times=100_000),
        )

    assert results == ["ab" * 500, "error: MCP server docs answered more than 50000 bytes"]


async def test_a_wrong_token_gives_a_tool_error_naming_the_server(
    start: Start,
    mcp_server: McpTestServer,
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = token_file.with_name("wrong_token")
    wrong.write_text("not-the-token")
    entry = docs(mcp_server.url, wrong)
    async for client in start(entry):
        results = await tool_results(client, call("docs.add", a=1, b=2))

    assert results == ["error: MCP server docs is unavailable (answered HTTP 401)"]
    assert "MCP server docs answered HTTP 401: its tools are not offered" in caplog.messages
    assert "not-the-token" not in caplog.text


async def test_the_api_starts_and_answers_with_a_dead_server(
    start: Start,
) -> None:
    entry = docs(f"http://127.0.0.1:{free_port()}/mcp", None)
    async for client in start(entry):
        results = await tool_results(client, call("docs.add", a=1, b=2), "/tool current_time")

    assert results[0] == "error: MCP server docs is unavailable (cannot be reached)"
    assert not results[1].startswith("error")


async def test_a_server_that_dies_or_dawdles_gives_one_tool_error_each(
    start: Start,
) -> None:
    server = McpTestServer()
    with server:
        entry = docs(server.url, None)
        clients = start(entry, tool_timeout_seconds=1)
        async for client in clients:
            slow = await tool_results(client, call("docs.wait", seconds=5))
            server.__exit__()
            gone = await tool_results(client, call("docs.add", a=1, b=2))

    assert slow == ["error: docs.wait timed out after 1 s"]
    assert gone == ["error: MCP server docs cannot be reached"]


async def test_a_server_down_at_start_is_offered_once_it_answers(
    start: Start,
) -> None:
    port = free_port()
    entry = docs(f"http://127.0.0.1:{port}/mcp", None)
    clients = start(entry, mcp_refresh_seconds=0.2)
    async for client in clients:
        with McpTestServer(port=port):
            deadline = time.monotonic() + 5
            while (results := await tool_results(client, call("docs.add", a=1, b=2))) != ["3"]:
                assert time.monotonic() < deadline, results
                await asyncio.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_openai_gets_wire_safe_names_and_we_keep_ours(
    start: Start,
    mcp_server: McpTestServer,
    token_file: Path,
    fake_openai: FakeOpenAI,
    stream: bool,
) -> None:
    llm = {"provider": "openai", "base_url": fake_openai.base_url, "max_retries": 0}
    headers = {"Accept": "text/event-stream"} if stream else {}
    async for client in start(docs(mcp_server.url, token_file), llm=llm):
        conversation = await new_conversation_id(client)
        await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": call("docs_add", a=1, b=2)},
            headers=headers,
        )
        stored = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]

    offered = {tool["function"]["name"] for tool in fake_openai.requests[0]["tools"]}
    assert offered == {"current_time", "read_file", "docs_add", "docs_repeat", "docs_wait"}
    sent_back = fake_openai.requests[1]["messages"][-2]["tool_calls"][0]["function"]["name"]
    assert sent_back == "docs_add"
    assert stored[1]["tool_calls"][0]["name"] == "docs.add"
    assert stored[2]["content"] == "3"


async def test_names_that_would_meet_on_the_wire_stay_apart(fake_openai: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    provider = OpenAICompatibleProvider(client, "test-model", max_tokens=64)
    names = ["docs.a_b", "docs_a_b", "docs.a.b", "long." + "x" * 70]
    specs = [ToolSpec(name, "a tool", {"type": "object"}) for name in names]

    completion = await provider.complete([ChatMessage("user", "/tool docs_a_b_2 {}")], specs)
    await provider.aclose()

    offered = [tool["function"]["name"] for tool in fake_openai.requests[0]["tools"]]
    assert offered == ["docs_a_b_2", "docs_a_b", "docs_a_b_3", "long_" + "x" * 59]
    assert completion.tool_calls[0].name == "docs.a_b"


@pytest.mark.parametrize(
    ("servers", "fragment"),
    [
        (
            [{"name": "docs", "url": "http://a/mcp"}, {"name": "docs", "url": "http://b/mcp"}],
            "config.yaml: agent.mcp_servers: two servers are named docs",
        ),
        ([{"name": "do.cs", "url": "http://a/mcp"}], "agent.mcp_servers.0.name: String should"),
        (
            [{"name": "docs", "url": "http://a/mcp", "tools": ["*", "add"]}],
            'agent.mcp_servers.0: tools: "*" (every tool) stands alone',
        ),
        (
            [{"name": "docs", "url": "http://a/mcp", "token_file": "/nonexistent/token"}],
            "token_file /nonexistent/token cannot be read: No such file or directory",
        ),
        ([{"name": "docs", "url": "not a url"}], "agent.mcp_servers.0.url: Input should be"),
    ],
    ids=["duplicate", "dotted-name", "star-and-more", "unreadable-token", "bad-url"],
)
def test_bad_mcp_servers_are_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    servers: list[dict[str, Any]],
    fragment: str,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"agent": {"mcp_servers": servers}}))
    monkeypatch.setenv("CONFIG_FILE", str(config))

    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, environment="test", **REQUIRED)

    assert fragment in str(raised.value)

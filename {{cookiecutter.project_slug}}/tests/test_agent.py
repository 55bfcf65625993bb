"""The agent loop with the offline echo provider: tools called, results fed back, steps stored.

The echo provider calls one tool per `/tool NAME {json}` line of the last user message.
"""

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from app.agent import registry
from app.agent.tools import ToolContext, tool
from tests.conftest import OTHER_API_KEY, make_settings, serve
from tests.sse import events, named

SYSTEM_PROMPT = "You are a helpful assistant."


class Nothing(BaseModel):
    pass


@tool
async def explode(args: Nothing, context: ToolContext) -> str:
    """A tool with a bug."""
    raise RuntimeError("secret internals")


@tool
async def dawdle(args: Nothing, context: ToolContext) -> str:
    """A tool that takes too long."""
    await asyncio.sleep(30)
    return "too late"


@pytest.fixture(autouse=True)
def test_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "TOOLS", [*registry.TOOLS, explode, dawdle])


def _line(name: str, **arguments: str) -> str:
    """The echo provider's syntax for one tool call."""
    return f"/tool {name} {json.dumps(arguments)}"


async def _turn(client: AsyncClient, content: str, **body: Any) -> tuple[str, dict[str, Any]]:
    """Send one message to a new conversation; return its id and the exchange."""
    conversation = str((await client.post("/v1/conversations", json={})).json()["id"])
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": content, **body}
    )
    assert response.status_code == 201, response.text
    return conversation, response.json()


async def _send(client: AsyncClient, content: str, **body: Any) -> dict[str, Any]:
    return (await _turn(client, content, **body))[1]


async def test_a_tool_call_runs_and_its_result_reaches_the_reply(client: AsyncClient) -> None:
    exchange = await _send(client, "What time is it?\n/tool current_time")

    steps = exchange["steps"]
    assert [s["role"] for s in steps] == ["assistant", "tool", "assistant"]
    call = steps[0]["tool_calls"][0]
    assert (call["name"], json.loads(call["arguments"])) == ("current_time", {})
    assert steps[1]["tool_call_id"] == call["id"]
    now = datetime.fromisoformat(steps[1]["content"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    assert exchange["assistant_message"] == steps[2]
    assert steps[2]["content"] == (
        f"[{SYSTEM_PROMPT}] What time is it?\ncurrent_time: {steps[1]['content']}"
    )
    assert exchange["stop_reason"] == "completed"


async def test_every_step_is_stored_with_its_usage(client: AsyncClient) -> None:
    conversation, exchange = await _turn(client, "Time?\n/tool current_time")

    detail = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]

    assert [m["role"] for m in detail] == ["user", "assistant", "tool", "assistant"]
    usages = [m["usage"] for m in detail]
    assert [u is None for u in usages] == [True, False, True, False]
    assert all(u["prompt_tokens"] > 0 for u in (usages[1], usages[3]))
    assert exchange["usage"] == {
        "prompt_tokens": usages[1]["prompt_tokens"] + usages[3]["prompt_tokens"],
        "completion_tokens": usages[1]["completion_tokens"] + usages[3]["completion_tokens"],
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }
    # Who answered each model step.
    assert [(m["provider"], m["model"]) for m in detail] == [
        (None, None),
        ("echo", "echo"),
        (None, None),
        ("echo", "echo"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/tool explode", "error: explode failed (RuntimeError)"),
        ("/tool nowhere", "error: no tool named 'nowhere'"),
        ('/tool read_file {"file_id": "nope"}', "error: bad arguments for read_file: file_id:"),
        ("/tool current_time {oops", "error: bad arguments for current_time: not a JSON object"),
        ('/tool current_time {"extra": 1}', "error: bad arguments for current_time: extra:"),
    ],
    ids=["raises", "unknown", "bad-uuid", "bad-json", "extra-argument"],
)
async def test_a_failing_call_goes_back_to_the_model_not_to_the_client(
    client: AsyncClient, line: str, expected: str
) -> None:
    exchange = await _send(client, f"try it\n{line}")

    result = exchange["steps"][1]
    assert result["role"] == "tool"
    assert result["content"].startswith(expected)
    assert "secret internals" not in result["content"]
    assert exchange["stop_reason"] == "completed"


@pytest.mark.parametrize("config_overrides", [{"agent": {"tool_timeout_seconds": 0.2}}])
async def test_a_slow_tool_times_out_into_its_result(client: AsyncClient) -> None:
    exchange = await _send(client, "wait\n/tool dawdle")

    assert exchange["steps"][1]["content"] == "error: dawdle timed out after 0.2 s"


@pytest.mark.parametrize("config_overrides", [{"agent": {"max_steps": 2}}])
async def test_the_turn_stops_at_max_steps(client: AsyncClient) -> None:
    exchange = await _send(
        client, "loop\n/tool current_time\n/tool current_time\n/tool current_time"
    )

    assert exchange["stop_reason"] == "max_steps"
    assert [s["role"] for s in exchange["steps"]] == ["assistant", "tool", "assistant", "tool"]
    assert exchange["assistant_message"] == exchange["steps"][2]


async def test_streaming_sends_tool_events_then_tokens_then_done(client: AsyncClient) -> None:
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]

    response = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "time please\n/tool current_time"},
        headers={"Accept": "text/event-stream"},
    )

    names = [name for name, _ in events(response.text)]
    assert names[:2] == ["tool_call", "tool_result"]
    assert set(names[2:-1]) == {"token"}
    assert names[-1] == "done"
    (call,) = named(response.text, "tool_call")
    (result,) = named(response.text, "tool_result")
    (done,) = named(response.text, "done")
    assert call["name"] == "current_time"
    assert (result["tool_call_id"], result["is_error"]) == (call["id"], False)
    tokens = "".join(data["content"] for data in named(response.text, "token"))
    assert done["assistant_message"]["content"] == tokens
    assert [s["role"] for s in done["steps"]] == ["assistant", "tool", "assistant"]
    assert done["stop_reason"] == "completed"


async def test_read_file_reads_an_attached_file_of_the_callers(client: AsyncClient) -> None:
    upload = await client.post("/v1/files", files={"file": ("n.txt", b"the plan", "text/plain")})
    file_id = upload.json()["id"]
    exchange = await _send(
        client, "read it\n" + _line("read_file", file_id=file_id), file_ids=[file_id]
    )
    unattached = await _send(client, "read it\n" + _line("read_file", file_id=file_id))

    assert exchange["steps"][1]["content"] == "the plan"
    assert unattached["steps"][1]["content"] == (
        f"error: file {file_id} is not attached to this conversation"
    )


async def test_read_file_cannot_reach_another_keys_file(client: AsyncClient) -> None:
    upload = await client.post("/v1/files", files={"file": ("n.txt", b"private", "text/plain")})
    file_id = upload.json()["id"]
    mine = (await client.post("/v1/conversations", json={})).json()["id"]
    await client.post(
        f"/v1/conversations/{mine}/messages", json={"content": "keep", "file_ids": [file_id]}
    )
    client.headers["Authorization"] = f"Bearer {OTHER_API_KEY}"

    exchange = await _send(client, _line("read_file", file_id=file_id))

    assert exchange["steps"][1]["content"].startswith(f"error: file {file_id} is not attached")
    assert "private" not in json.dumps(exchange)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the allowed host " + b"x" * 500
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def page_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_http_get_is_not_offered_without_allowed_hosts(
    client: AsyncClient, page_host: str
) -> None:
    exchange = await _send(client, _line("http_get", url=f"http://{page_host}/"))

    assert exchange["steps"][1]["content"] == "error: no tool named 'http_get'"


async def test_http_get_fetches_from_an_allowed_host_only(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection, page_host: str
) -> None:
    agent = {"http_allowed_hosts": [page_host], "http_max_bytes": 40}
    settings = make_settings(tmp_path, migrated, redis_url, agent=agent)
    async for client in serve(settings, connection):
        allowed = await _send(client, _line("http_get", url=f"http://{page_host}/"))
        refused = await _send(client, '/tool http_get {"url": "http://192.0.2.1:9/"}')

    assert allowed["steps"][1]["content"] == "HTTP 200\nhello from the allowed host xxxxxxxxxxxx"
    assert refused["steps"][1]["content"] == (
        "error: host 192.0.2.1 is not in agent.http_allowed_hosts"
    )


async def test_the_attachments_of_a_turn_are_read_in_one_query(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    for name in ("a", "b", "c"):
        upload = await client.post("/v1/files", files={"file": (name, b"text", "text/plain")})
        await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": name, "file_ids": [upload.json()["id"]]},
        )
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection.sync_connection, "before_cursor_execute", record)
    try:
        await client.post(f"/v1/conversations/{conversation}/messages", json={"content": "d"})
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", record)

    assert len([s for s in statements if "FROM files" in s]) == 1

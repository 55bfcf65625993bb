"""AG-UI runs on a conversation, read with AG-UI's own event types as its clients read them.

The echo provider calls one tool per `/tool NAME` line of the last user message, then
replies with the message and one `NAME: result` line per call.
"""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ag_ui.core import (
    BaseEvent,
    Event,
    EventType,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from httpx import AsyncClient
from pydantic import BaseModel, TypeAdapter

from app.agent import registry
from app.agent.tools import ToolContext, tool
from app.api import sse
from tests.conftest import OTHER_API_KEY, new_conversation_id

SYSTEM_PROMPT = "You are a helpful assistant."
AGUI_EVENT: TypeAdapter[BaseEvent] = TypeAdapter(Event)


class Nothing(BaseModel):
    pass


@tool
async def ponder(args: Nothing, context: ToolContext) -> str:
    """A tool slower than the keep-alive interval."""
    await asyncio.sleep(1.5)
    return "pondered"


def run_input(thread_id: str, *messages: dict[str, Any]) -> dict[str, Any]:
    """A RunAgentInput as HttpAgent sends it: the whole thread, and the rest of its fields."""
    return {
        "threadId": thread_id,
        "runId": "run-1",
        "messages": list(messages),
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
    }


def user(text: str, message_id: str = "u2") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "content": text}


def parsed(body: str) -> list[BaseEvent]:
    """Every event of the stream, keep-alive comments skipped."""
    frames = [frame for frame in body.split("\n\n") if frame.startswith("data: ")]
    return [AGUI_EVENT.validate_json(frame.removeprefix("data: ")) for frame in frames]


async def _run(client: AsyncClient, conversation: str, *messages: dict[str, Any]) -> Any:
    return await client.post(
        f"/v1/conversations/{conversation}/agui",
        json=run_input(conversation, *messages),
        headers={"Accept": "text/event-stream"},
    )


async def test_a_run_streams_the_tool_call_its_result_and_the_reply(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)

    response = await _run(client, conversation, user("time?\n/tool current_time"))

    events = parsed(response.text)
    kinds = [event.type for event in events]
    assert kinds[:6] == [
        EventType.RUN_STARTED,
        EventType.TOOL_CALL_START,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_END,
        EventType.TOOL_CALL_RESULT,
        EventType.TEXT_MESSAGE_START,
    ]
    assert set(kinds[6:-2]) == {EventType.TEXT_MESSAGE_CONTENT}
    assert kinds[-2:] == [EventType.TEXT_MESSAGE_END, EventType.RUN_FINISHED]
    started, call, _, _, result, *_, finished = events
    assert isinstance(started, RunStartedEvent)
    assert isinstance(finished, RunFinishedEvent)
    assert {(e.thread_id, e.run_id) for e in (started, finished)} == {(conversation, "run-1")}
    assert isinstance(call, ToolCallStartEvent)
    assert isinstance(result, ToolCallResultEvent)
    assert (call.tool_call_name, result.tool_call_id) == ("current_time", call.tool_call_id)
    now = datetime.fromisoformat(str(result.content))
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    text = "".join(e.delta for e in events if isinstance(e, TextMessageContentEvent))
    assert text == f"[{SYSTEM_PROMPT}] time?\ncurrent_time: {result.content}"


async def test_a_run_stores_its_last_user_message_and_its_steps(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)
    earlier = {"id": "a1", "role": "assistant", "content": "Hello, how can I help?"}

    await _run(client, conversation, user("hi", "u1"), earlier, user("time?\n/tool current_time"))
    again = await _run(client, conversation, user("and you?", "u3"))

    stored = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    # The thread's earlier messages did not come through this api: they are not its history.
    assert [(m["role"], m["content"].split("\n")[0]) for m in stored] == [
        ("user", "time?"),
        ("assistant", ""),
        ("tool", stored[2]["content"]),
        ("assistant", f"[{SYSTEM_PROMPT}] time?"),
        ("user", "and you?"),
        ("assistant", f"[{SYSTEM_PROMPT}] and you?"),
    ]
    assert parsed(again.text)[-1].type == EventType.RUN_FINISHED


async def test_a_re_run_with_no_new_user_message_stores_it_once(client: AsyncClient) -> None:
    """A regenerate, or a run after a frontend tool's result, sends the thread again with no
    new user message: the message is found by its id, and only the new answer is stored."""
    conversation = await new_conversation_id(client)
    reply = f"[{SYSTEM_PROMPT}] hi"

    await _run(client, conversation, user("hi", "u1"))
    again = await _run(client, conversation, user("hi", "u1"), {"id": "a1", "role": "assistant"})
    new = await _run(client, conversation, user("hi", "u1"), user("hi", "u3"))

    stored = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "hi"),
        ("assistant", reply),
        ("assistant", reply),
        ("user", "hi"),  # another id: another message, though its text is the same
        ("assistant", reply),
    ]
    assert [parsed(r.text)[-1].type for r in (again, new)] == [EventType.RUN_FINISHED] * 2


@pytest.fixture
def slow_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "TOOLS", [*registry.TOOLS, ponder])
    monkeypatch.setattr(sse, "KEEP_ALIVE_SECONDS", 0.5)


@pytest.mark.usefixtures("slow_tool")
async def test_keep_alive_comments_flow_while_a_tool_runs(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)

    response = await _run(client, conversation, user("think\n/tool ponder"))

    frames = response.text.split("\n\n")
    called = next(i for i, f in enumerate(frames) if '"TOOL_CALL_END"' in f)
    answered = next(i for i, f in enumerate(frames) if '"TOOL_CALL_RESULT"' in f)
    assert any(f.startswith(": ping") for f in frames[called:answered])
    assert parsed(response.text)[-1].type == EventType.RUN_FINISHED


async def test_another_keys_conversation_is_not_found(client: AsyncClient) -> None:
    theirs = await new_conversation_id(client, headers={"Authorization": f"Bearer {OTHER_API_KEY}"})
    unknown = str(uuid.uuid4())

    foreign = await _run(client, theirs, user("hi"))
    missing = await _run(client, unknown, user("hi"))

    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign.json()["detail"] == f"conversation {theirs} not found"
    mine = await client.get(
        f"/v1/conversations/{theirs}", headers={"Authorization": f"Bearer {OTHER_API_KEY}"}
    )
    assert mine.json()["messages"] == []


@pytest.mark.parametrize(
    ("thread", "messages", "field"),
    [
        (None, [{"id": "a1", "role": "assistant", "content": "hello"}], ["body", "messages"]),
        (None, [user("")], ["body", "messages", 0, "content"]),
        (str(uuid.uuid4()), [user("hi")], ["body", "threadId"]),
        (None, [user("hi", "u" * 201)], ["body", "messages", 0, "id"]),
    ],
    ids=["no-user-message", "empty-user-message", "another-thread", "an-id-too-long"],
)
async def test_a_bad_run_gets_422_naming_the_field_and_stores_nothing(
    client: AsyncClient, thread: str | None, messages: list[dict[str, Any]], field: list[Any]
) -> None:
    conversation = await new_conversation_id(client)
    body = run_input(thread or conversation, *messages)

    response = await client.post(f"/v1/conversations/{conversation}/agui", json=body)

    assert response.status_code == 422
    assert field in [error["loc"] for error in response.json()["detail"]]
    assert (await client.get(f"/v1/conversations/{conversation}")).json()["messages"] == []


async def test_a_failing_provider_ends_the_run_with_run_error(
    openai_client: AsyncClient, fake_openai: Any
) -> None:
    fake_openai.fail_with = 500
    conversation = await new_conversation_id(openai_client)

    response = await _run(openai_client, conversation, user("hi"))

    events = parsed(response.text)
    assert [e.type for e in events] == [EventType.RUN_STARTED, EventType.RUN_ERROR]
    assert isinstance(events[-1], RunErrorEvent)
    assert events[-1].code == "provider_error"
    assert "500" in events[-1].message

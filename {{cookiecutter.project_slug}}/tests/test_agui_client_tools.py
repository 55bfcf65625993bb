"""AG-UI frontend tools: RunAgentInput.tools offered to the model, their calls handed to the
client (no result follows them; RUN_FINISHED names them), their results taken on the next run;
and runs sent twice at once storing their user message once.

The echo provider calls one tool per `/tool NAME {json}` line of the last user message, then
replies with the message and one `NAME: result` line per call.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ag_ui.core import (
    BaseEvent,
    EventType,
    RunFinishedEvent,
    RunFinishedSuccessOutcome,
    TextMessageContentEvent,
    ToolCallArgsEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations import service
from app.conversations.models import Conversation
from app.conversations.schemas import MessageCreate, tool_call_data
from app.llm.base import ToolCall
from tests.conftest import make_settings, new_conversation_id, serve
from tests.test_agui import SYSTEM_PROMPT, parsed, run_input, user

WEATHER = {
    "name": "weather",
    "description": "The weather in a city, as the browser's widget shows it.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK = 'weather?\n/tool weather {"city": "Paris"}'


async def _run(
    client: AsyncClient, conversation: str, *messages: dict[str, Any], tools: Any = (WEATHER,)
) -> Any:
    body = {**run_input(conversation, *messages), "tools": list(tools)}
    return await client.post(f"/v1/conversations/{conversation}/agui", json=body)


def called(call_id: str, name: str = "weather", arguments: str = '{"city": "Paris"}') -> Any:
    """The assistant message HttpAgent keeps for a call it was sent (its id: the call's)."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"id": call_id, "role": "assistant", "toolCalls": [call]}


def answered(call_id: str, content: str, message_id: str = "t1") -> dict[str, Any]:
    return {"id": message_id, "role": "tool", "toolCallId": call_id, "content": content}


def finished(events: list[BaseEvent]) -> RunFinishedEvent:
    assert isinstance(events[-1], RunFinishedEvent)
    return events[-1]


def pending(events: list[BaseEvent]) -> list[str] | None:
    """The calls the run left for the client to run, as its RUN_FINISHED names them."""
    outcome = finished(events).outcome
    if outcome is None:
        return None
    assert isinstance(outcome, RunFinishedSuccessOutcome)
    return outcome.pending_tool_call_ids


def text(events: list[BaseEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextMessageContentEvent))


async def _stored(client: AsyncClient, conversation: str) -> list[tuple[str, str]]:
    messages = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    return [(m["role"], m["content"]) for m in messages]


async def test_a_call_of_a_frontend_tool_is_handed_to_the_client(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)

    response = await _run(client, conversation, user(ASK, "u1"))

    events = parsed(response.text)
    assert [e.type for e in events] == [
        EventType.RUN_STARTED,
        EventType.TOOL_CALL_START,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_END,
        EventType.RUN_FINISHED,
    ]
    start, args = events[1], events[2]
    assert isinstance(start, ToolCallStartEvent)
    assert isinstance(args, ToolCallArgsEvent)
    assert start.tool_call_name == "weather"
    assert json.loads(args.delta) == {"city": "Paris"}
    done = finished(events)
    assert done.result == {"stop_reason": "client_tools"}
    assert pending(events) == [start.tool_call_id]
    assert await _stored(client, conversation) == [("user", ASK), ("assistant", "")]
    stored = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [(c["id"], c["name"]) for c in stored[1]["tool_calls"]] == [
        (start.tool_call_id, "weather")
    ]


async def test_the_agents_calls_bring_their_result_and_the_clients_do_not(
    client: AsyncClient,
) -> None:
    """How a client tells them apart: a result follows the agent's; RUN_FINISHED names its."""
    conversation = await new_conversation_id(client)

    response = await _run(client, conversation, user(f"/tool current_time\n{ASK}", "u1"))

    events = parsed(response.text)
    starts = [e for e in events if isinstance(e, ToolCallStartEvent)]
    results = [e for e in events if isinstance(e, ToolCallResultEvent)]
    assert [s.tool_call_name for s in starts] == ["current_time", "weather"]
    assert [r.tool_call_id for r in results] == [starts[0].tool_call_id]
    assert pending(events) == [starts[1].tool_call_id]


async def test_the_next_run_takes_the_tools_result_and_answers(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)
    first = parsed((await _run(client, conversation, user(ASK, "u1"))).text)
    (call_id,) = pending(first) or []
    thread = [user(ASK, "u1"), called(call_id), answered(call_id, "sunny, 21°C")]

    second = parsed((await _run(client, conversation, *thread)).text)

    reply = f"[{SYSTEM_PROMPT}] weather?\nweather: sunny, 21°C"
    assert text(second) == reply
    assert finished(second).result == {"stop_reason": "completed"}
    assert pending(second) is None
    assert await _stored(client, conversation) == [
        ("user", ASK),
        ("assistant", ""),
        ("tool", "sunny, 21°C"),
        ("assistant", reply),
    ]


async def test_a_re_run_with_the_same_tool_result_stores_it_once(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))
    thread = [user(ASK, "u1"), called("echo_call_1"), answered("echo_call_1", "sunny")]

    await _run(client, conversation, *thread)
    again = await _run(client, conversation, *thread, {"id": "a2", "role": "assistant"})

    reply = f"[{SYSTEM_PROMPT}] weather?\nweather: sunny"
    assert text(parsed(again.text)) == reply
    assert await _stored(client, conversation) == [
        ("user", ASK),
        ("assistant", ""),
        ("tool", "sunny"),
        ("assistant", reply),
        ("assistant", reply),
    ]


async def test_a_failed_frontend_tool_tells_the_model_its_error(client: AsyncClient) -> None:
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))
    failed = {**answered("echo_call_1", ""), "error": "the widget is offline"}

    response = await _run(client, conversation, user(ASK, "u1"), called("echo_call_1"), failed)

    assert text(parsed(response.text)).endswith("\nweather: error: the widget is offline")


async def test_a_re_run_while_the_client_owes_a_result_hands_the_call_back(
    client: AsyncClient,
) -> None:
    """No result is made up for the client's call: the next run asks for it again."""
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))

    again = parsed((await _run(client, conversation, user(ASK, "u1"), called("echo_call_1"))).text)

    starts = [e for e in again if isinstance(e, ToolCallStartEvent)]
    assert [(s.tool_call_id, s.tool_call_name) for s in starts] == [("echo_call_1", "weather")]
    assert not [e for e in again if isinstance(e, ToolCallResultEvent)]
    assert pending(again) == ["echo_call_1"]
    assert await _stored(client, conversation) == [("user", ASK), ("assistant", "")]


async def test_a_new_user_message_after_the_tools_result_is_stored_after_it(
    client: AsyncClient,
) -> None:
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))
    thread = [user(ASK, "u1"), called("echo_call_1"), answered("echo_call_1", "sunny")]

    await _run(client, conversation, *thread, user("thanks", "u2"))

    assert await _stored(client, conversation) == [
        ("user", ASK),
        ("assistant", ""),
        ("tool", "sunny"),
        ("user", "thanks"),
        ("assistant", f"[{SYSTEM_PROMPT}] thanks"),
    ]


@pytest.mark.parametrize(
    ("tool", "field", "kind"),
    [
        ({**WEATHER, "name": "current_time"}, ["body", "tools", 0, "name"], "tool_name_taken"),
        (
            {**WEATHER, "name": "docs.search"},
            ["body", "tools", 0, "name"],
            "string_pattern_mismatch",
        ),
        ({**WEATHER, "parameters": "a city"}, ["body", "tools", 0, "parameters"], "dict_type"),
    ],
    ids=["the-agents-own-name", "a-name-no-model-takes", "parameters-not-a-schema"],
)
async def test_a_bad_frontend_tool_gets_422_naming_it_and_stores_nothing(
    client: AsyncClient, tool: dict[str, Any], field: list[Any], kind: str
) -> None:
    conversation = await new_conversation_id(client)

    response = await _run(client, conversation, user(ASK, "u1"), tools=[tool])

    assert response.status_code == 422
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [(field, kind)]
    assert await _stored(client, conversation) == []


@pytest.mark.parametrize(
    ("answer", "field", "kind"),
    [
        (answered("echo_call_9", "sunny"), "toolCallId", "unknown_tool_call"),
        (answered("echo_call_1", "x" * 32_001), "content", "invalid_tool_result"),
        (answered("echo_call_1", "sunny", "t" * 201), "id", "too_long"),
    ],
    ids=["a-call-never-made", "a-result-too-long", "an-id-too-long"],
)
async def test_a_bad_tool_result_gets_422_naming_it_and_stores_nothing(
    client: AsyncClient, answer: dict[str, Any], field: str, kind: str
) -> None:
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))

    response = await _run(client, conversation, user(ASK, "u1"), called("echo_call_1"), answer)

    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "messages", 2, field], kind)]
    assert await _stored(client, conversation) == [("user", ASK), ("assistant", "")]


async def test_a_result_for_an_undeclared_tools_call_is_refused(client: AsyncClient) -> None:
    """The run that brings a result declares the tool again, as HttpAgent's runs do."""
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))
    thread = [user(ASK, "u1"), called("echo_call_1"), answered("echo_call_1", "sunny")]

    response = await _run(client, conversation, *thread, tools=[])

    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert (error["loc"], error["type"]) == (
        ["body", "messages", 2, "toolCallId"],
        "unknown_tool_call",
    )
    assert await _stored(client, conversation) == [("user", ASK), ("assistant", "")]


async def test_a_client_cannot_answer_a_call_of_the_agents_own_tools(
    client: AsyncClient, maker: async_sessionmaker[AsyncSession]
) -> None:
    """A turn cut short leaves the agent's call unanswered: it runs here, on the next turn."""
    conversation = await new_conversation_id(client)
    ask = "time?\n/tool current_time"
    call = ToolCall("echo_call_1", "current_time", "{}")
    async with maker() as session:
        owned = await session.get(Conversation, uuid.UUID(conversation))
        assert owned is not None
        await service.add_user_message(
            session=session, conversation=owned, data=MessageCreate(content=ask)
        )
        await service.add_step(
            session=session,
            conversation_id=owned.id,
            role="assistant",
            content="",
            tool_calls=[tool_call_data(call)],
        )
    faked = answered("echo_call_1", "1999-12-31T23:59:59+00:00")
    thread = [user(ask, "u1"), called("echo_call_1", "current_time", "{}"), faked]

    response = await _run(client, conversation, *thread)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "messages", 2, "toolCallId"]
    assert await _stored(client, conversation) == [("user", ask), ("assistant", "")]


async def test_a_result_for_a_call_no_longer_waiting_is_refused(client: AsyncClient) -> None:
    """Once a user message came after the call, it waits for nothing: its result is late."""
    conversation = await new_conversation_id(client)
    await _run(client, conversation, user(ASK, "u1"))
    await _run(
        client, conversation, user(ASK, "u1"), called("echo_call_1"), user("never mind", "u2")
    )

    late = await _run(
        client,
        conversation,
        user(ASK, "u1"),
        called("echo_call_1"),
        user("never mind", "u2"),
        answered("echo_call_1", "sunny"),
    )

    assert late.status_code == 422
    assert late.json()["detail"][0]["loc"] == ["body", "messages", 3, "toolCallId"]


@pytest.fixture
async def committed(
    tmp_path: Path, migrated: str, redis_url: str, redis: Redis
) -> AsyncIterator[AsyncClient]:
    """The api on its own engine, its writes committed: two requests at once each take a
    connection of their own, as they would in production, which the sessions sharing one
    connection of a rolled-back test transaction cannot do."""
    async for client in serve(make_settings(tmp_path, migrated, redis_url), None):
        yield client


async def test_two_runs_at_once_with_one_message_store_it_once(committed: AsyncClient) -> None:
    conversation = await new_conversation_id(committed)

    runs = await asyncio.gather(*[_run(committed, conversation, user("hi", "u1")) for _ in "ab"])

    assert [r.status_code for r in runs] == [200, 200]
    assert [parsed(r.text)[-1].type for r in runs] == [EventType.RUN_FINISHED] * 2
    stored = await _stored(committed, conversation)
    assert stored == [("user", "hi"), *[("assistant", f"[{SYSTEM_PROMPT}] hi")] * 2]

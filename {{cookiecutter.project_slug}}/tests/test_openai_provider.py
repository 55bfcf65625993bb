"""The openai provider against a real local HTTP server speaking the OpenAI wire format."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from httpx import AsyncClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.sections import PriceConfig
from app.conversations.models import Message
from app.llm.base import ChatMessage, Completion, OutputFormat, Usage
from app.llm.openai_compatible import OpenAICompatibleProvider
from app.spend.prices import Prices
from app.turns import NO_RESULT
from tests.conftest import make_settings, new_conversation_id, serve
from tests.fake_openai import FakeOpenAI
from tests.sse import named


async def test_reply_comes_from_the_endpoint_with_prompt_history_and_key(
    openai_client: AsyncClient, fake_openai: FakeOpenAI
) -> None:
    conversation = await new_conversation_id(openai_client)
    url = f"/v1/conversations/{conversation}/messages"

    await openai_client.post(url, json={"content": "first"})
    response = await openai_client.post(url, json={"content": "second"})

    assert response.status_code == 201
    assert response.json()["assistant_message"]["content"] == "fake reply to: second"
    sent = fake_openai.requests[-1]
    assert sent["model"] == "test-model"
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are a helpful assistant."),
        ("user", "first"),
        ("assistant", "fake reply to: first"),
        ("user", "second"),
    ]
    assert fake_openai.headers_seen[-1]["authorization"] == "Bearer test-openai-key"


async def test_a_call_left_without_a_result_gets_one_before_the_next_message(
    openai_client: AsyncClient, fake_openai: FakeOpenAI, connection: AsyncConnection
) -> None:
    """A message stream the client cut off mid-call leaves a call with no result; OpenAI
    refuses such a history, so the next message's history says the call got none."""
    conversation = await new_conversation_id(openai_client)
    url = f"/v1/conversations/{conversation}/messages"
    await openai_client.post(url, json={"content": "first"})
    cut = [{"id": "cut_1", "name": "current_time", "arguments": "{}"}]
    await connection.execute(
        insert(Message).values(
            id=uuid.uuid4(),
            conversation_id=uuid.UUID(conversation),
            role="assistant",
            content="",
            tool_calls=cut,
            file_ids=[],
            created_at=datetime.now(UTC),
        )
    )

    response = await openai_client.post(url, json={"content": "second"})

    assert response.status_code == 201
    sent = fake_openai.requests[-1]["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in sent[-3:]] == [
        ("assistant", None),
        ("tool", "cut_1"),
        ("user", None),
    ]
    assert sent[-2]["content"] == NO_RESULT


# With pings: comments and events without data between the chunks are skipped, as the SSE
# specification says.
@pytest.mark.parametrize("pings", [False, True])
async def test_streamed_reply_is_relayed_and_stored(
    openai_client: AsyncClient, fake_openai: FakeOpenAI, pings: bool
) -> None:
    conversation = await new_conversation_id(openai_client)
    fake_openai.pings = pings

    response = await openai_client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "tell me"},
        headers={"Accept": "text/event-stream"},
    )

    tokens = [data["content"] for data in named(response.text, "token")]
    assert "".join(tokens) == "fake reply to: tell me"
    assert fake_openai.requests[-1]["stream"] is True
    stored = (await openai_client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert stored[-1]["content"] == "fake reply to: tell me"


async def test_provider_failure_gives_502_and_keeps_the_user_message(
    openai_client: AsyncClient, fake_openai: FakeOpenAI
) -> None:
    conversation = await new_conversation_id(openai_client)
    fake_openai.fail_with = 500

    response = await openai_client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "are you there?"}
    )

    assert response.status_code == 502
    assert response.json()["detail"] == "the language model provider answered HTTP 500"
    assert "exploded" not in response.text
    stored = (await openai_client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "are you there?")]


async def test_stream_failure_sends_an_error_event_and_keeps_the_user_message(
    openai_client: AsyncClient, fake_openai: FakeOpenAI
) -> None:
    conversation = await new_conversation_id(openai_client)
    fake_openai.fail_with = 503

    response = await openai_client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "stream?"},
        headers={"Accept": "text/event-stream"},
    )

    assert response.text.startswith("event: error\n")
    assert "answered HTTP 503" in response.text
    stored = (await openai_client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [m["role"] for m in stored] == ["user"]


@pytest.mark.parametrize(
    ("how", "detail"),
    [
        ("error", "the language model provider failed"),
        ("malformed", "the language model provider sent a malformed stream"),
    ],
)
async def test_a_stream_broken_midway_ends_with_an_error_event_and_stores_no_reply(
    openai_client: AsyncClient, fake_openai: FakeOpenAI, how: str, detail: str
) -> None:
    conversation = await new_conversation_id(openai_client)
    fake_openai.break_stream = how

    response = await openai_client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "go on"},
        headers={"Accept": "text/event-stream"},
    )

    assert [data["content"] for data in named(response.text, "token")] == ["fake "]
    assert named(response.text, "error") == [{"detail": detail}]
    assert "prompt was" not in response.text
    stored = (await openai_client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [m["role"] for m in stored] == ["user"]


async def test_unreachable_endpoint_gives_502(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection
) -> None:
    llm = {"provider": "openai", "base_url": "http://127.0.0.1:1/v1", "max_retries": 0}
    settings = make_settings(tmp_path, migrated, redis_url, llm=llm)
    async for client in serve(settings, connection):
        conversation = await new_conversation_id(client)
        response = await client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hello?"}
        )

    assert response.status_code == 502
    assert response.json()["detail"] == "the language model provider could not be reached"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_tool_calls_go_over_the_tools_api_and_results_come_back(
    openai_client: AsyncClient, fake_openai: FakeOpenAI, stream: bool
) -> None:
    conversation = await new_conversation_id(openai_client)
    headers = {"Accept": "text/event-stream"} if stream else {}

    response = await openai_client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": 'time?\n/tool current_time {"unused": 1}\n/tool current_time'},
        headers=headers,
    )

    exchange = named(response.text, "done")[0] if stream else response.json()
    first, second, last = fake_openai.requests
    offered = [tool["function"]["name"] for tool in first["tools"]]
    assert offered == ["current_time", "read_file"]
    assert first["tools"][0]["function"]["parameters"]["type"] == "object"
    # The arguments arrive whole even when streamed in fragments; a bad one is answered.
    call = second["messages"][-2]["tool_calls"][0]
    assert call["function"] == {"name": "current_time", "arguments": '{"unused": 1}'}
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["tool_call_id"] == call["id"]
    assert second["messages"][-1]["content"].startswith("error: bad arguments")
    assert [m["role"] for m in last["messages"][-4:]] == ["assistant", "tool"] * 2
    assert [s["role"] for s in exchange["steps"]] == ["assistant", "tool"] * 2 + ["assistant"]
    assert exchange["assistant_message"]["content"].startswith("fake reply to: time?")
    # Three model calls at the fake's 7 + 3 tokens each.
    assert exchange["usage"] == {
        "prompt_tokens": 21,
        "completion_tokens": 9,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }


# OpenAI reports the input read from its prompt cache in prompt_tokens_details; servers that
# speak its format may send the field as null, or not at all.
CACHED = {"cached_tokens": 1536, "audio_tokens": 0}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("details", "cached"),
    [(CACHED, 1536), (None, 0), ("absent", 0)],
    ids=["cached", "null", "absent"],
)
async def test_cached_input_tokens_are_read_and_priced_as_cached(
    fake_openai: FakeOpenAI, stream: bool, details: object, cached: int
) -> None:
    counted: dict[str, Any] = {"prompt_tokens": 2000, "completion_tokens": 10}
    if details != "absent":
        counted["prompt_tokens_details"] = details
    fake_openai.usage = lambda _: counted
    client = openai.AsyncOpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    provider = OpenAICompatibleProvider(client, "test-model", max_tokens=256)
    messages = [ChatMessage("user", "a long prompt")]

    if stream:
        *_, answer = [piece async for piece in provider.stream(messages)]
    else:
        answer = await provider.complete(messages)
    await provider.aclose()

    assert isinstance(answer, Completion)
    assert answer.usage == Usage(2000, 10, cache_read_tokens=cached)
    # $1 per million input tokens, $0.10 cached, $2 out.
    prices = Prices(
        {"openai:test-model": PriceConfig(input=1, output=2, cache_read=Decimal("0.1"))}
    )
    cost = prices.cost("openai", "test-model", answer.usage)
    assert cost == (Decimal(2000 - cached) + Decimal(cached) / 10 + 10 * 2) / 1_000_000


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_output_format_goes_out_as_response_format_and_none_leaves_it_out(
    fake_openai: FakeOpenAI, stream: bool
) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    provider = OpenAICompatibleProvider(client, "test-model", max_tokens=256)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    messages = [ChatMessage("user", "count")]

    for output in (OutputFormat("count", schema), None):
        if stream:
            _ = [piece async for piece in provider.stream(messages, (), output)]
        else:
            await provider.complete(messages, (), output)
    await provider.aclose()

    with_format, without = fake_openai.requests
    assert with_format["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    assert "response_format" not in without

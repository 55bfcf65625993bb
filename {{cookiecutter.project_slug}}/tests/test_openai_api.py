"""The OpenAI-compatible endpoint, driven by the official openai SDK as OpenAI clients are.

The echo provider calls one tool per `/tool NAME` line of the last user message and then
replies with the message and one `NAME: result` line per call.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from httpx import AsyncClient
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.chat_completion_message_function_tool_call import Function
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.conversations.models import Message
from app.conversations.schemas import MAX_MESSAGE_CHARS
from tests.conftest import API_KEY

SYSTEM_PROMPT = "You are a helpful assistant."
CALL: ChatCompletionMessageFunctionToolCallParam = {
    "id": "c1",
    "type": "function",
    "function": {"name": "current_time", "arguments": ""},
}


# A function the client declares and runs itself, and a message that makes the echo model
# call it.
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK_WEATHER = '/tool get_weather {"city": "Paris"}'


def sdk(client: AsyncClient, api_key: str = API_KEY) -> AsyncOpenAI:
    """The SDK over the app's test client, with no retries (it retries 429 and 5xx)."""
    # The SDK takes an httpx client as well as an httpx2 one; its annotation names only the
    # latter.
    http_client: Any = client
    base_url = str(client.base_url.join("/v1"))
    return AsyncOpenAI(api_key=api_key, base_url=base_url, http_client=http_client, max_retries=0)


def user(content: Any) -> ChatCompletionUserMessageParam:
    return {"role": "user", "content": content}


async def _stored(connection: AsyncConnection) -> int:
    return int(await connection.scalar(select(func.count()).select_from(Message)) or 0)


async def test_the_agent_is_listed_as_one_model(client: AsyncClient) -> None:
    page = await sdk(client).models.list()

    assert [(model.id, model.object) for model in page.data] == [("agent", "model")]


async def test_a_completion_runs_a_tool_shows_its_result_and_stores_nothing(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    before = await _stored(connection)

    completion = await sdk(client).chat.completions.create(
        model="agent",
        messages=[user("What time is it?\n/tool current_time")],
        # What OpenAI clients send besides: taken, and ignored.
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        user="someone",
    )

    (choice,) = completion.choices
    greeting, tool_line = (choice.message.content or "").splitlines()
    assert greeting == f"[{SYSTEM_PROMPT}] What time is it?"
    name, _, result = tool_line.partition(": ")
    assert name == "current_time"
    assert abs(datetime.fromisoformat(result) - datetime.now(UTC)) < timedelta(minutes=1)
    assert (choice.finish_reason, completion.model) == ("stop", "agent")
    assert completion.usage is not None
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert await _stored(connection) == before


async def test_a_client_tool_call_comes_back_for_the_client_to_run(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    api = sdk(client)
    before = await _stored(connection)

    asked = await api.chat.completions.create(
        model="agent", messages=[user(ASK_WEATHER)], tools=[WEATHER]
    )
    (call,) = asked.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    answered = await api.chat.completions.create(
        model="agent",
        tools=[WEATHER],
        messages=[
            user(ASK_WEATHER),
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"},
        ],
    )

    assert (asked.choices[0].finish_reason, asked.choices[0].message.content) == (
        "tool_calls",
        None,
    )
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert answered.choices[0].finish_reason == "stop"
    assert str(answered.choices[0].message.content).endswith("\nget_weather: 18 C, sunny")
    assert await _stored(connection) == before


async def test_the_agents_own_tools_run_here_and_only_the_clients_come_back(
    client: AsyncClient,
) -> None:
    asked = await sdk(client).chat.completions.create(
        model="agent", messages=[user(f"/tool current_time\n{ASK_WEATHER}")], tools=[WEATHER]
    )

    calls = asked.choices[0].message.tool_calls or []
    assert [(call.type, getattr(call, "function", None)) for call in calls] == [
        ("function", Function(name="get_weather", arguments='{"city": "Paris"}'))
    ]
    assert asked.choices[0].finish_reason == "tool_calls"


async def test_a_streamed_client_tool_call_ends_the_stream_with_tool_calls(
    client: AsyncClient,
) -> None:
    stream = await sdk(client).chat.completions.create(
        model="agent", messages=[user(ASK_WEATHER)], tools=[WEATHER], stream=True
    )
    chunks = [chunk async for chunk in stream]

    choices = [choice for chunk in chunks for choice in chunk.choices]
    calls = [call for choice in choices for call in choice.delta.tool_calls or []]
    assert [(c.index, c.function and c.function.name) for c in calls] == [(0, "get_weather")]
    assert json.loads(str(calls[0].function and calls[0].function.arguments)) == {"city": "Paris"}
    assert [c.finish_reason for c in choices if c.finish_reason] == ["tool_calls"]


@pytest.mark.parametrize(
    ("name", "code"),
    [("current_time", "tool_name_taken"), ("docs.search", "string_pattern_mismatch")],
)
async def test_a_client_tool_named_as_the_agents_or_badly_gets_422(
    client: AsyncClient, name: str, code: str
) -> None:
    tool: ChatCompletionFunctionToolParam = {"type": "function", "function": {"name": name}}

    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await sdk(client).chat.completions.create(
            model="agent", messages=[user("hi")], tools=[tool]
        )

    assert (refused.value.param, refused.value.code) == ("tools[0].function.name", code)


async def test_a_whole_chat_is_taken_with_text_parts_and_earlier_tool_calls(
    client: AsyncClient,
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "developer", "content": "Answer briefly."},
        user("what time?"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        {"role": "assistant", "content": "It is noon."},
        user([{"type": "text", "text": "and "}, {"type": "text", "text": "now?"}]),
    ]

    completion = await sdk(client).chat.completions.create(model="agent", messages=messages)

    assert completion.choices[0].message.content == f"[{SYSTEM_PROMPT}] and now?"


async def test_a_streamed_completion_ends_with_finish_reason_usage_and_done(
    client: AsyncClient,
) -> None:
    messages = [user("What time is it?\n/tool current_time")]
    whole = await sdk(client).chat.completions.create(model="agent", messages=messages)

    stream = await sdk(client).chat.completions.create(
        model="agent", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text.splitlines()[0] == (whole.choices[0].message.content or "").splitlines()[0]
    assert text.splitlines()[1].startswith("current_time: ")
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 2) + [
        "stop"
    ]
    assert (chunks[-1].choices, chunks[-1].usage) == ([], whole.usage)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1


async def test_the_stream_ends_with_done(client: AsyncClient) -> None:
    body = {"model": "agent", "messages": [user("hi")], "stream": True}

    response = await client.post("/v1/chat/completions", json=body)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")


async def test_a_wrong_key_gets_openais_401(client: AsyncClient) -> None:
    wrong = sdk(client, api_key="not-a-key")
    with pytest.raises(openai.AuthenticationError) as listing:
        await wrong.models.list()
    # A request with a body is refused before it is read, by the admission middleware.
    with pytest.raises(openai.AuthenticationError) as chatting:
        await wrong.chat.completions.create(model="agent", messages=[user("hi")])

    for refused in (listing.value, chatting.value):
        assert (refused.status_code, refused.type, refused.code) == (
            401,
            "invalid_request_error",
            "invalid_api_key",
        )
        # What the SDK shows: the status, and OpenAI's message (not the body's JSON).
        assert refused.message == (
            "Error code: 401 - missing or invalid API key; send Authorization: Bearer <key>"
        )


async def test_another_model_gets_openais_404(client: AsyncClient) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        await sdk(client).chat.completions.create(model="gpt-4o", messages=[user("hi")])

    assert refused.value.code == "model_not_found"
    assert refused.value.param == "model"
    assert "`agent`" in refused.value.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([user("hi")] * 101, "messages"),
        ([user("x" * (MAX_MESSAGE_CHARS + 1))], "messages[0].content"),
        ([user([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}])], None),
        ([], "messages"),
        ([{"role": "tool", "content": "noon"}], "messages[0]"),
        (
            [
                user("fetch it"),
                {"role": "assistant", "tool_calls": [CALL]},
            ],
            "messages[1].tool_calls",
        ),
    ],
    ids=[
        "too-many-messages",
        "too-long",
        "an-image",
        "no-message",
        "a-tool-result-of-no-call",
        "a-call-with-no-result",
    ],
)
async def test_bad_chats_get_422_naming_the_field(
    client: AsyncClient, messages: list[ChatCompletionMessageParam], param: str | None
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await sdk(client).chat.completions.create(model="agent", messages=messages)

    error = refused.value
    assert (error.type, error.code is not None) == ("invalid_request_error", True)
    if param is None:  # the part's type, under either form content may take
        assert str(error.param).startswith("messages[0].content")
    else:
        assert error.param == param
    assert error.message.startswith(f"Error code: 422 - {error.param}: ")


@pytest.mark.parametrize("config_overrides", [{"rate_limit": {"requests": 2}}])
async def test_completions_spend_the_keys_rate_limit(client: AsyncClient) -> None:
    await client.get("/v1/conversations")
    await sdk(client).chat.completions.create(model="agent", messages=[user("hi")])

    with pytest.raises(openai.RateLimitError) as refused:
        await sdk(client).chat.completions.create(model="agent", messages=[user("hi")])

    assert int(refused.value.response.headers["Retry-After"]) > 0
    assert (refused.value.type, refused.value.code) == ("requests", "rate_limit_exceeded")
    assert refused.value.message.startswith("Error code: 429 - rate limit exceeded: 2 requests")


@pytest.mark.parametrize("config_overrides", [{"requests": {"max_json_bytes": 1024}}])
async def test_a_body_past_the_bound_gets_openais_413(client: AsyncClient) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        await sdk(client).chat.completions.create(model="agent", messages=[user("x" * 2000)])

    assert (refused.value.status_code, refused.value.code) == (413, "request_too_large")
    assert "1024" in refused.value.message


async def test_other_paths_keep_fastapis_shape(client: AsyncClient) -> None:
    """Only the paths OpenAI clients call answer in OpenAI's shape."""
    wrong = {"Authorization": "Bearer not-a-key"}
    listing = await client.get("/v1/conversations", headers=wrong)
    creating = await client.post("/v1/conversations", json={"title": 1})

    assert listing.json() == {
        "detail": "missing or invalid API key; send Authorization: Bearer <key>"
    }
    assert creating.json()["detail"][0]["loc"] == ["body", "title"]


async def test_a_failing_provider_gives_502_in_openais_shape(
    openai_client: AsyncClient, fake_openai: Any
) -> None:
    fake_openai.fail_with = 500

    with pytest.raises(openai.APIStatusError) as refused:
        await sdk(openai_client).chat.completions.create(model="agent", messages=[user("hi")])

    assert refused.value.status_code == 502
    assert (refused.value.type, refused.value.code) == ("server_error", "provider_error")


async def test_a_failing_provider_ends_the_stream_with_an_error(
    openai_client: AsyncClient, fake_openai: Any
) -> None:
    fake_openai.fail_with = 500
    stream = await sdk(openai_client).chat.completions.create(
        model="agent", messages=[user("hi")], stream=True
    )

    with pytest.raises(openai.APIError) as failed:
        async for _ in stream:
            pass

    assert failed.value.code == "provider_error"

"""The anthropic provider against a real local HTTP server speaking the Messages API.

Requests and replies; how failures become errors is in tests/test_anthropic_errors.py.
"""

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from app.llm.anthropic import AnthropicProvider
from app.llm.base import ChatMessage, OutputFormat, ToolCall, ToolSpec, Usage
from tests.anthropic_helpers import BOTH, CLOCK, KEY, LOOKUP, answer, provider_at, stream_pieces
from tests.fake_anthropic import FakeAnthropic, api_key_of


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    provider = provider_at(fake.base_url)
    yield provider
    await provider.aclose()


async def test_a_whole_reply_is_the_models_text(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    completion = await provider.complete([ChatMessage("user", "hello")])

    assert completion.content == "fake reply to: hello"
    assert completion.tool_calls == ()
    sent = fake.requests[-1]
    assert (sent["model"], sent["max_tokens"], sent.get("stream")) == ("claude-test", 256, None)
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]


async def test_a_streamed_reply_comes_in_pieces_that_make_the_whole(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    texts, completion = await stream_pieces(provider, [ChatMessage("user", "tell me more")])

    assert len(texts) > 1
    assert "".join(texts) == "fake reply to: tell me more"
    assert completion.content == "fake reply to: tell me more"
    assert fake.requests[-1]["stream"] is True


async def test_the_key_is_sent_to_the_api(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    await provider.complete([ChatMessage("user", "hello")])

    assert api_key_of(fake.headers_seen[-1]) == KEY
    assert fake.headers_seen[-1]["anthropic-version"]


@BOTH
async def test_system_prompt_and_tools_carry_cache_breakpoints(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool
) -> None:
    messages = [
        ChatMessage("system", "You are terse."),
        ChatMessage("system", "Today is Monday."),
        ChatMessage("user", "hi"),
    ]

    await answer(provider, messages, [LOOKUP, CLOCK], stream=stream)

    sent = fake.requests[-1]
    assert sent["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Today is Monday.", "cache_control": {"type": "ephemeral"}},
    ]
    assert sent["tools"] == [
        {"name": "lookup", "description": "Look a word up.", "input_schema": LOOKUP.parameters},
        {
            "name": "current_time",
            "description": "Tell the time.",
            "input_schema": CLOCK.parameters,
            "cache_control": {"type": "ephemeral"},
        },
    ]
    assert [m["role"] for m in sent["messages"]] == ["user"]


async def test_no_system_prompt_and_no_tools_leave_the_fields_out(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete([ChatMessage("system", ""), ChatMessage("user", "hi")])

    assert "system" not in fake.requests[-1]
    assert "tools" not in fake.requests[-1]
    assert "output_config" not in fake.requests[-1]


@BOTH
async def test_a_strict_output_format_goes_out_made_to_fit_anthropics_schemas(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}

    await answer(
        provider, [ChatMessage("user", "hi")], output=OutputFormat("n", schema), stream=stream
    )

    # As the SDK's messages.parse sends it: the object closed, the bound in the description.
    closed = {
        "type": "object",
        "properties": {"n": {"type": "integer", "description": "{minimum: 1}"}},
        "additionalProperties": False,
    }
    assert fake.requests[-1]["output_config"] == {
        "format": {"type": "json_schema", "schema": closed}
    }


async def test_a_format_that_is_not_strict_is_left_to_the_prompt(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # OpenAI's json_object: any object, which Anthropic's always strict outputs would narrow.
    loose = OutputFormat("json_object", {"type": "object"}, strict=False)

    await provider.complete([ChatMessage("user", "answer in JSON")], output=loose)

    assert "output_config" not in fake.requests[-1]


async def test_empty_text_is_left_out_and_the_turns_around_it_merged(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # The API refuses an empty text block; an empty tool result is fine without content.
    call = ToolCall("toolu_q", "lookup", "{}")
    messages = [
        ChatMessage("user", "first"),
        ChatMessage("assistant", "  "),
        ChatMessage("user", "second"),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "", (), "toolu_q"),
    ]

    await provider.complete(messages, [LOOKUP])

    assert fake.requests[-1]["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_q", "name": "lookup", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_q"}]},
    ]


@BOTH
async def test_a_tool_call_goes_out_and_its_result_comes_back_paired_by_id(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool
) -> None:
    asked = ChatMessage("user", 'define it\n/tool lookup {"word": "ephemeral", "n": 2}')

    first = await answer(provider, [asked], [LOOKUP], stream=stream)

    # Streamed, the arguments came in fragments: they arrive whole.
    (call,) = first.tool_calls
    assert (call.id, call.name) == ("toolu_fake_1", "lookup")
    assert json.loads(call.arguments) == {"word": "ephemeral", "n": 2}
    assert first.content == ""
    history = [
        asked,
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "lasting", (), call.id),
    ]

    second = await answer(provider, history, [LOOKUP], stream=stream)

    assert second.content.startswith("fake reply to: define it")
    assert fake.requests[-1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_fake_1",
                    "name": "lookup",
                    "input": {"word": "ephemeral", "n": 2},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_fake_1", "content": "lasting"}
            ],
        },
    ]


async def test_a_streamed_call_of_a_tool_without_arguments_has_an_empty_object(
    provider: AnthropicProvider,
) -> None:
    texts, completion = await stream_pieces(
        provider, [ChatMessage("user", "/tool current_time")], [CLOCK]
    )

    assert texts == []
    assert [(c.name, json.loads(c.arguments)) for c in completion.tool_calls] == [
        ("current_time", {})
    ]


async def test_consecutive_turns_of_one_role_are_merged(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    calls = (ToolCall("toolu_a", "lookup", '{"word": "a"}'), ToolCall("toolu_b", "lookup", "{}"))
    messages = [
        ChatMessage("user", "first"),
        ChatMessage("user", "/tool lookup {}\n/tool lookup {}"),
        ChatMessage("assistant", "Looking both up.", calls),
        ChatMessage("tool", "A", (), "toolu_a"),
        ChatMessage("tool", "B", (), "toolu_b"),
    ]

    completion = await provider.complete(messages, [LOOKUP])

    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["text"] for b in sent[0]["content"]] == ["first", "/tool lookup {}\n/tool lookup {}"]
    assert [b["type"] for b in sent[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "B"},
    ]
    # Both results reached the model as answers to its calls: it replies instead of calling.
    assert completion.tool_calls == ()


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]", '"text"', ""])
async def test_stored_arguments_that_are_no_object_go_out_as_an_empty_input(
    provider: AnthropicProvider, fake: FakeAnthropic, arguments: str
) -> None:
    call = ToolCall("toolu_x", "lookup", arguments)
    messages = [
        ChatMessage("user", "go"),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "error: bad arguments", (), "toolu_x"),
    ]

    await provider.complete(messages, [LOOKUP])

    assert fake.requests[-1]["messages"][1]["content"][0]["input"] == {}


@BOTH
async def test_an_mcp_tool_name_goes_out_wire_safe_and_comes_back_ours(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool
) -> None:
    docs = ToolSpec("docs.search", "Search the docs.", {"type": "object"})
    asked = ChatMessage("user", '/tool docs_search {"q": "x"}')

    completion = await answer(provider, [asked], [docs], stream=stream)
    (call,) = completion.tool_calls
    result = ChatMessage("tool", "found", (), call.id)
    await answer(
        provider, [asked, ChatMessage("assistant", "", (call,)), result], [docs], stream=stream
    )

    assert call.name == "docs.search"
    first, second = fake.requests
    assert [tool["name"] for tool in first["tools"]] == ["docs_search"]
    assert second["messages"][1]["content"][0]["name"] == "docs_search"


@BOTH
async def test_cached_tokens_are_counted_in_the_prompt_and_apart(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool
) -> None:
    messages = [
        ChatMessage("system", "You are a careful assistant. " * 20),
        ChatMessage("user", "hi"),
    ]

    first = await answer(provider, messages, [LOOKUP], stream=stream)
    second = await answer(provider, messages, [LOOKUP], stream=stream)

    reported = [
        Usage(
            u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"],
            u["output_tokens"],
            u["cache_read_input_tokens"],
            u["cache_creation_input_tokens"],
        )
        for u in fake.usages
    ]
    assert [first.usage, second.usage] == reported
    # The first call wrote the cache, the second read what it wrote; the prompt is the same.
    assert first.usage.cache_write_tokens > 0
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.cache_write_tokens == 0
    assert second.usage.prompt_tokens == first.usage.prompt_tokens > first.usage.cache_write_tokens
    # The final count, not message_start's placeholder of 1: "fake reply to: hi" is 4 words.
    assert first.usage.completion_tokens == 4

"""The gemini provider, through the real google-genai client, against a local fake Gemini API.

Requests and replies; how failures become errors is in tests/test_gemini_errors.py.
"""

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from app.llm.base import ChatMessage, OutputFormat, ToolCall, ToolSpec
from app.llm.gemini import GeminiProvider
from tests.fake_gemini import THOUGHTS_TOKENS, FakeGemini
from tests.fake_gemini_model import signature_for
from tests.gemini_helpers import KEY, MODEL, STREAMS, answer, provider_at, user

# google-genai makes its aiohttp session from a subclass of aiohttp's, which aiohttp warns of.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)


class _Where(BaseModel):
    city: str
    country: str | None = None


class _TimeArguments(BaseModel):
    zone: str
    where: _Where | None = None


# A pydantic schema with what Gemini's own Schema type lacks: $defs, $ref, anyOf, titles.
TIME = ToolSpec("current_time", "The time in a zone.", _TimeArguments.model_json_schema())
READ = ToolSpec("files.read", "Read a file (an MCP server's tool).", {"type": "object"})


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
async def gemini(fake_gemini: FakeGemini) -> AsyncIterator[GeminiProvider]:
    async with provider_at(fake_gemini.base_url) as provider:
        yield provider


def _schema(declaration: dict[str, Any]) -> Any:
    # Proto JSON takes a field by either spelling; the SDK sends this one in snake_case.
    return declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))


async def test_reply_comes_from_the_endpoint_with_system_instruction_and_key(
    gemini: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    messages = [ChatMessage("system", "Be brief."), user("hello")]

    completion = await gemini.complete(messages)

    assert completion.content == "fake reply to: hello"
    assert completion.tool_calls == ()
    assert fake_gemini.paths == [f"/v1/models/{MODEL}:generateContent"]
    sent = fake_gemini.requests[-1]
    assert sent["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]
    assert "tools" not in sent
    assert fake_gemini.headers_seen[-1]["x-goog-api-key"] == KEY


async def test_streamed_pieces_arrive_one_by_one_and_join_to_the_reply(
    gemini: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    pieces, completion = await answer(gemini, [user("tell me more")], stream=True)

    assert pieces == ["fake ", "reply ", "to: ", "tell ", "me ", "more"]
    assert "".join(pieces) == completion.content == "fake reply to: tell me more"
    assert fake_gemini.paths == [f"/v1/models/{MODEL}:streamGenerateContent"]
    assert fake_gemini.queries == [{"alt": ["sse"]}]


@STREAMS
async def test_usage_counts_thoughts_as_output_and_the_cached_prefix(
    gemini: GeminiProvider, stream: bool
) -> None:
    first = [user("one two three")]
    _, before = await answer(gemini, first, stream=stream)
    again = [*first, ChatMessage("assistant", before.content), user("four")]

    _, after = await answer(gemini, again, stream=stream)

    # The fake: a token a word; "fake reply to: ..." costs its words plus its thoughts.
    assert before.usage.prompt_tokens == 3
    assert before.usage.completion_tokens == 6 + THOUGHTS_TOKENS
    assert before.usage.cache_read_tokens == 0
    assert after.usage.prompt_tokens == 3 + 6 + 1
    assert after.usage.completion_tokens == 4 + THOUGHTS_TOKENS
    assert after.usage.cache_read_tokens == 3
    assert after.usage.cache_write_tokens == 0


async def test_tools_are_declared_with_our_json_schemas_unchanged(
    gemini: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    await gemini.complete([user("what time is it?")], [TIME, READ])

    [tool] = fake_gemini.requests[-1]["tools"]
    declarations = tool["functionDeclarations"]
    assert [(d["name"], d["description"]) for d in declarations] == [
        ("current_time", "The time in a zone."),
        ("files_read", "Read a file (an MCP server's tool)."),
    ]
    assert _schema(declarations[0]) == TIME.parameters
    assert "$defs" in _schema(declarations[0])
    assert _schema(declarations[1]) == {"type": "object"}
    assert "parameters" not in declarations[0]


@STREAMS
async def test_an_output_format_asks_for_json_of_its_schema_unchanged(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool
) -> None:
    output = OutputFormat("where", _Where.model_json_schema())

    await answer(gemini, [user("where?")], stream=stream, output=output)
    await answer(gemini, [user("where?")], stream=stream)

    with_format, without = (request.get("generationConfig", {}) for request in fake_gemini.requests)
    assert with_format["responseMimeType"] == "application/json"
    assert with_format["responseJsonSchema"] == output.schema
    assert "responseMimeType" not in without
    assert "responseJsonSchema" not in without


@STREAMS
@pytest.mark.parametrize("with_ids", [False, True], ids=["no-ids", "gemini-ids"])
async def test_a_tool_round_trip_pairs_the_result_with_its_call(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool, with_ids: bool
) -> None:
    fake_gemini.with_call_ids = with_ids
    asked = [user('time?\n/tool current_time {"zone": "UTC"}')]

    pieces, step = await answer(gemini, asked, [TIME], stream=stream)
    [call] = step.tool_calls
    answered = [
        *asked,
        ChatMessage("assistant", step.content, tool_calls=step.tool_calls),
        ChatMessage("tool", "12:00", tool_call_id=call.id),
    ]
    _, last = await answer(gemini, answered, [TIME], stream=stream)

    assert pieces == []
    assert step.content == ""
    assert (call.name, call.arguments) == ("current_time", '{"zone": "UTC"}')
    if with_ids:
        assert call.id == "fc_fake_1"
    assert last.content == 'fake reply to: time?\n/tool current_time {"zone": "UTC"}'
    *_, model, results = fake_gemini.requests[-1]["contents"]
    ids = {"id": "fc_fake_1"} if with_ids else {}
    # Gemini's own signature goes back with its call, as Gemini 3 requires.
    assert model == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "current_time", "args": {"zone": "UTC"}, **ids},
                "thoughtSignature": signature_for(1),
            }
        ],
    }
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "current_time", "response": {"result": "12:00"}, **ids}}
        ],
    }


async def test_calls_without_gemini_ids_get_ids_of_their_own(gemini: GeminiProvider) -> None:
    asked = [user("/tool current_time {}")]

    first = await gemini.complete(asked, [TIME])
    second = await gemini.complete(asked, [TIME])

    assert first.tool_calls[0].id != second.tool_calls[0].id


async def test_results_of_one_step_go_back_in_one_user_turn_paired_by_id(
    gemini: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    # A step another provider took: no signature of Gemini's, one argument text not an object.
    calls = (
        ToolCall("call_a", "current_time", '{"zone": "UTC"}'),
        ToolCall("call_b", "files.read", "[1, 2]"),
    )
    history = [
        user("both, please"),
        ChatMessage("assistant", "Looking.", tool_calls=calls),
        ChatMessage("tool", "read: hello", tool_call_id="call_b"),
        ChatMessage("tool", "12:00", tool_call_id="call_a"),
    ]

    completion = await gemini.complete(history, [TIME, READ])

    assert completion.content == "fake reply to: both, please"
    _, model, results = fake_gemini.requests[-1]["contents"]
    foreign = base64.urlsafe_b64encode(b"skip_thought_signature_validator").decode()
    assert model["parts"] == [
        {"text": "Looking."},
        {
            "functionCall": {"id": "call_a", "name": "current_time", "args": {"zone": "UTC"}},
            "thoughtSignature": foreign,
        },
        {"functionCall": {"id": "call_b", "name": "files_read", "args": {}}},
    ]
    assert results == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": "call_b",
                    "name": "files_read",
                    "response": {"result": "read: hello"},
                }
            },
            {
                "functionResponse": {
                    "id": "call_a",
                    "name": "current_time",
                    "response": {"result": "12:00"},
                }
            },
        ],
    }


@STREAMS
async def test_an_mcp_tool_name_round_trips_to_ours(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool
) -> None:
    asked = [user('/tool files_read {"path": "a.txt"}')]

    _, step = await answer(gemini, asked, [READ, TIME], stream=stream)
    [call] = step.tool_calls
    answered = [
        *asked,
        ChatMessage("assistant", "", tool_calls=step.tool_calls),
        ChatMessage("tool", "hello", tool_call_id=call.id),
    ]
    await answer(gemini, answered, [READ, TIME], stream=stream)

    assert (call.name, call.arguments) == ("files.read", '{"path": "a.txt"}')
    *_, model, results = fake_gemini.requests[-1]["contents"]
    assert model["parts"][0]["functionCall"]["name"] == "files_read"
    assert results["parts"][0]["functionResponse"]["name"] == "files_read"

"""The Responses API, driven by the official openai SDK as its clients drive it, its answers
checked against the Open Responses specification's types (openresponses-types).

Every response is a run a worker executes: here the worker's Executor, in-process, takes each
queued run; the api and it commit, as separate processes would, and each test deletes what its
keys wrote. The echo provider calls one tool per `/tool NAME {json}` line of the last user
message, then replies with the message and one `NAME: result` line per call.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import agents
import openai
import openresponses_types as spec
import pytest
from httpx import AsyncClient
from openai import AsyncOpenAI
from openai.types.responses import FunctionToolParam, ResponseInputParam
from openai.types.responses.response_input_param import FunctionCallOutput, McpApprovalResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.conversations.models import Conversation
from tests.conftest import make_settings, served_with_worker
from tests.sse import events
from tests.test_openai_api import sdk as openai_sdk

# Keys of this module only (named: their rows' owner is the name): what they write is
# committed, and deleted after each test.
OWNER, KEY = "responses-tests", "responses-test-key"
OTHER, OTHER_KEY = "responses-other", "responses-other-key"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}
# The echo model says the system prompt first.
SAID = "[You are a helpful assistant.] "
ASK_WEATHER = 'weather?\n/tool get_weather {"city": "Paris"}'
# OpenAI's item types for the agent's own tool calls and its approval requests: the
# specification leaves such items to each provider, so its types do not list them.
EXTENSIONS = {"mcp_call", "mcp_approval_request"}
SPEC_EVENTS: dict[str, type[BaseModel]] = {
    "response.created": spec.ResponseCreatedStreamingEvent,
    "response.in_progress": spec.ResponseInProgressStreamingEvent,
    "response.completed": spec.ResponseCompletedStreamingEvent,
    "response.incomplete": spec.ResponseIncompleteStreamingEvent,
    "response.failed": spec.ResponseFailedStreamingEvent,
    "response.output_item.added": spec.ResponseOutputItemAddedStreamingEvent,
    "response.output_item.done": spec.ResponseOutputItemDoneStreamingEvent,
    "response.content_part.added": spec.ResponseContentPartAddedStreamingEvent,
    "response.content_part.done": spec.ResponseContentPartDoneStreamingEvent,
    "response.output_text.delta": spec.ResponseOutputTextDeltaStreamingEvent,
    "response.output_text.done": spec.ResponseOutputTextDoneStreamingEvent,
    "response.function_call_arguments.delta": spec.ResponseFunctionCallArgumentsDeltaStreamingEvent,
    "response.function_call_arguments.done": spec.ResponseFunctionCallArgumentsDoneStreamingEvent,
}


def conforms(response: dict[str, Any]) -> None:
    """Validate a response object against the specification's ResponseResource, the
    providers' own items left out."""
    checked = {**response, "output": [i for i in response["output"] if i["type"] not in EXTENSIONS]}
    text_format = dict(checked["text"]["format"])
    if "schema" in text_format:
        # The generated types declare a json_schema format's schema as null (a generator's
        # slip: the specification's document has an object there).
        checked["text"] = {"format": {**text_format, "schema": None, "description": None}}
    spec.ResponseResource.model_validate(checked)


def event_conforms(event: dict[str, Any]) -> None:
    item = event.get("item")
    if item is not None and item["type"] in EXTENSIONS:
        return
    if "response" in event:
        conforms(event["response"])
        event = {**event, "response": {**event["response"], "output": []}}
    SPEC_EVENTS[event["type"]].model_validate(event)


def sdk(client: AsyncClient, key: str = KEY) -> AsyncOpenAI:
    """The openai SDK over the app's client, on this module's key unless told otherwise."""
    return openai_sdk(client, key)


@pytest.fixture
async def api(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    engine: AsyncEngine,
    config_overrides: dict[str, Any],
    working: bool,
) -> AsyncIterator[AsyncClient]:
    """The api and a worker over committed rows, as separate processes would be."""
    overrides = {"worker": {"events_poll_seconds": 0.02}, **config_overrides}
    settings = make_settings(
        tmp_path, migrated, redis_url, api_keys=f"{OWNER}:{KEY},{OTHER}:{OTHER_KEY}", **overrides
    )
    async with served_with_worker(
        settings, engine, api_key=KEY, owners=(OWNER, OTHER), working=working
    ) as client:
        yield client


async def test_a_response_runs_the_agents_tool_and_answers(api: AsyncClient) -> None:
    raw = await sdk(api).responses.with_raw_response.create(
        model="agent", input="time?\n/tool current_time"
    )
    response = raw.parse()

    conforms(raw.http_response.json())
    assert (response.status, response.background, response.error) == ("completed", False, None)
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_call", "message"]
    call = response.output[0]
    assert call.type == "mcp_call"
    assert call.name == "current_time"
    assert call.output
    assert response.output_text.startswith(SAID + "time?\ncurrent_time: ")
    assert response.usage is not None
    assert response.usage.input_tokens > 0


async def test_a_streamed_response_sends_the_specifications_events_in_order(
    api: AsyncClient,
) -> None:
    async with sdk(api).responses.stream(
        model="agent", input="time?\n/tool current_time"
    ) as stream:
        seen = [event async for event in stream]
        final = await stream.get_final_response()
    async with api.stream(
        "POST", "/v1/responses", json={"model": "agent", "input": "hi", "stream": True}
    ) as raw:
        body = (await raw.aread()).decode()

    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    assert seen[0].type == "response.created"
    assert seen[-1].type == "response.completed"
    assert "response.output_text.delta" in [e.type for e in seen]
    first = final.output[0]
    assert first.type == "mcp_call"
    assert final.output_text == f"{SAID}time?\ncurrent_time: {first.output}"
    named = events(body)
    for name, data in named:
        assert name == data["type"]
        event_conforms(data)
    assert body.rstrip().endswith("data: [DONE]")
    assert [data["delta"] for name, data in named if name == "response.output_text.delta"] == [
        SAID + "hi"
    ]


async def test_a_background_response_is_queued_then_read_and_its_stream_resumed(
    api: AsyncClient,
) -> None:
    client = sdk(api)
    started = await client.responses.create(
        model="agent", input="time?\n/tool current_time", background=True
    )
    for _ in range(200):
        done = await client.responses.retrieve(started.id)
        if done.status == "completed":
            break
        await asyncio.sleep(0.02)
    whole = [e async for e in await client.responses.retrieve(started.id, stream=True)]
    after = [
        e async for e in await client.responses.retrieve(started.id, stream=True, starting_after=3)
    ]

    assert (started.status, started.background, started.output) == ("queued", True, [])
    assert done.status == "completed"
    assert done.output_text.startswith(SAID + "time?")
    assert [e.sequence_number for e in after] == [e.sequence_number for e in whole[4:]]
    assert [e.model_dump() for e in after] == [e.model_dump() for e in whole[4:]]


@pytest.mark.parametrize("working", [False])
async def test_a_queued_response_is_cancelled(api: AsyncClient) -> None:
    client = sdk(api)
    started = await client.responses.create(model="agent", input="hi", background=True)

    cancelled = await client.responses.cancel(started.id)
    read = await client.responses.retrieve(started.id)

    assert (cancelled.status, read.status) == ("cancelled", "cancelled")


async def test_a_client_function_comes_back_as_a_call_and_its_output_continues_it(
    api: AsyncClient,
) -> None:
    client = sdk(api)
    asked = await client.responses.create(model="agent", input=ASK_WEATHER, tools=[WEATHER])
    call = asked.output[0]
    assert call.type == "function_call"
    answer: FunctionCallOutput = {
        "type": "function_call_output",
        "call_id": call.call_id,
        "output": "18C, clear",
    }
    answered = await client.responses.create(
        model="agent",
        previous_response_id=asked.id,
        input=[answer],
        tools=[WEATHER],
    )

    assert (asked.status, [i.type for i in asked.output]) == ("completed", ["function_call"])
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert answered.previous_response_id == asked.id
    assert answered.output_text == SAID + "weather?\nget_weather: 18C, clear"


async def test_a_whole_exchange_sent_again_needs_no_previous_response(api: AsyncClient) -> None:
    """As the OpenAI Agents SDK does by default: every item so far, sent each time."""
    items: ResponseInputParam = [
        {"role": "user", "content": ASK_WEATHER},
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": "rain"},
    ]
    response = await sdk(api).responses.create(model="agent", input=items, tools=[WEATHER])

    assert response.output_text == SAID + "weather?\nget_weather: rain"


async def test_only_the_latest_ended_response_can_be_continued(api: AsyncClient) -> None:
    client = sdk(api)
    first = await client.responses.create(model="agent", input="one")
    second = await client.responses.create(
        model="agent", previous_response_id=first.id, input="two"
    )

    with pytest.raises(openai.ConflictError) as branched:
        await client.responses.create(model="agent", previous_response_id=first.id, input="three")

    assert second.output_text == SAID + "two"
    error = branched.value.body
    assert isinstance(error, dict)
    assert error["code"] == "conflict"
    assert f"continue from {second.id}" in error["message"]


async def test_another_keys_response_is_not_found_as_an_unknown_one(api: AsyncClient) -> None:
    mine = await sdk(api).responses.create(model="agent", input="hi", background=True)
    with pytest.raises(openai.NotFoundError) as foreign:
        await sdk(api, OTHER_KEY).responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk(api).responses.retrieve("resp_" + "0" * 32)
    with pytest.raises(openai.NotFoundError):
        await sdk(api, OTHER_KEY).responses.cancel(mine.id)
    with pytest.raises(openai.NotFoundError):
        await sdk(api, OTHER_KEY).responses.create(
            model="agent", previous_response_id=mine.id, input="mine now?"
        )

    assert foreign.value.message.replace(mine.id, "X") == unknown.value.message.replace(
        "resp_" + "0" * 32, "X"
    )


@pytest.mark.parametrize(
    ("request_body", "param", "code"),
    [
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            # The item's type, then its field: the tag pydantic names the union's branch by.
            "input[0].message.content",
            None,
        ),
        (
            {"input": "x", "tools": [{**WEATHER, "name": "current_time"}]},
            "tools[0].name",
            "tool_name_taken",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "nope", "output": "1"}]},
            "input",
            "unknown_call",
        ),
        (
            {
                "input": [
                    {
                        "type": "mcp_approval_response",
                        "approval_request_id": "mcpr_x",
                        "approve": True,
                    }
                ]
            },
            "input[0]",
            "no_previous_response",
        ),
        ({"input": []}, "input", None),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
            "text.format.json_schema.schema",
            None,
        ),
    ],
)
async def test_an_invalid_request_is_a_422_naming_the_field_and_stores_nothing(
    api: AsyncClient,
    engine: AsyncEngine,
    request_body: dict[str, Any],
    param: str,
    code: str | None,
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await sdk(api).responses.create(model="agent", **request_body)

    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert code is None or error["code"] == code
    async with engine.connect() as connection:
        stored = await connection.scalar(select(Conversation.id).where(Conversation.owner == OWNER))
    assert stored is None


async def test_another_model_is_a_404_naming_the_model(api: AsyncClient) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk(api).responses.create(model="gpt-4o", input="hi")

    assert isinstance(unknown.value.body, dict)
    assert unknown.value.body["code"] == "model_not_found"


GATED = {"agent": {"require_approval": ["current_time"]}}


@pytest.mark.parametrize("config_overrides", [GATED])
@pytest.mark.parametrize("approve", [True, False])
async def test_an_approval_request_is_answered_by_an_approval_response(
    api: AsyncClient, approve: bool
) -> None:
    client = sdk(api)
    waiting = await client.responses.create(model="agent", input="time?\n/tool current_time")
    request = waiting.output[-1]
    assert request.type == "mcp_approval_request"
    decision: McpApprovalResponse = {
        "type": "mcp_approval_response",
        "approval_request_id": request.id,
        "approve": approve,
    }
    decided = await client.responses.create(
        model="agent",
        previous_response_id=waiting.id,
        input=[decision],
    )
    again = await client.responses.retrieve(waiting.id)

    assert (waiting.status, request.name) == ("completed", "current_time")
    assert decided.status == "completed"
    call = decided.output[0]
    assert call.type == "mcp_call"
    assert call.name == "current_time"
    if approve:
        assert "denied" not in (call.output or "")
    else:
        assert "denied" in (call.output or "")
    assert decided.output_text.startswith(SAID + "time?\ncurrent_time: ")
    assert [i.type for i in again.output] == ["mcp_approval_request"]


@pytest.mark.parametrize("config_overrides", [GATED])
async def test_a_waiting_response_takes_only_every_approval_response(api: AsyncClient) -> None:
    client = sdk(api)
    waiting = await client.responses.create(model="agent", input="time?\n/tool current_time")
    with pytest.raises(openai.UnprocessableEntityError) as missing:
        await client.responses.create(model="agent", previous_response_id=waiting.id, input="hi")

    assert isinstance(missing.value.body, dict)
    assert missing.value.body["code"] == "missing_approval"
    still = await client.responses.retrieve(waiting.id)
    assert [i.type for i in still.output] == ["mcp_approval_request"]


async def test_the_openai_agents_sdk_runs_its_function_against_the_service(
    api: AsyncClient,
) -> None:
    """The OpenAI Agents SDK, its Responses model pointed at the service: the model's call of
    the agent's function comes back to the SDK, which runs it and sends its output."""
    ran: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "18C, clear"

    model = agents.OpenAIResponsesModel(model="agent", openai_client=sdk(api))
    agent = agents.Agent(name="forecaster", model=model, tools=[get_weather])
    result = await agents.Runner.run(
        agent, ASK_WEATHER, run_config=agents.RunConfig(tracing_disabled=True)
    )

    assert ran == ["Paris"]
    assert result.final_output == SAID + "weather?\nget_weather: 18C, clear"


async def test_the_openai_agents_sdk_replays_the_agents_own_calls_with_its_own(
    api: AsyncClient,
) -> None:
    """A step that calls the agent's tool and the SDK's function: the SDK gets the agent's call
    as an mcp_call item (run here, not by it), runs its own, and sends both back."""
    ran: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "rain"

    model = agents.OpenAIResponsesModel(model="agent", openai_client=sdk(api))
    agent = agents.Agent(name="forecaster", model=model, tools=[get_weather])
    result = await agents.Runner.run(
        agent,
        "time and weather?\n/tool current_time\n" + ASK_WEATHER.splitlines()[1],
        run_config=agents.RunConfig(tracing_disabled=True),
    )

    assert ran == ["Paris"]
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_item"]
    lines = str(result.final_output).splitlines()
    assert lines[0] == SAID + "time and weather?"
    assert lines[1].startswith("current_time: ")
    assert lines[2] == "get_weather: rain"


class City(BaseModel):
    name: str
    country: str


async def test_a_response_answers_json_valid_for_its_text_format(api: AsyncClient) -> None:
    raw = await sdk(api).responses.with_raw_response.parse(
        model="agent", input="Paris?", text_format=City
    )
    parsed = raw.parse()

    conforms(raw.http_response.json())
    assert parsed.output_parsed == City(name=SAID + "Paris?", country=SAID + "Paris?")
    assert parsed.text is not None
    assert parsed.text.format is not None
    assert parsed.text.format.type == "json_schema"


async def test_the_openai_agents_sdk_gets_structured_output_after_its_function_ran(
    api: AsyncClient,
) -> None:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"18C in {city}"

    model = agents.OpenAIResponsesModel(model="agent", openai_client=sdk(api))
    agent = agents.Agent(name="geo", model=model, tools=[get_weather], output_type=City)
    result = await agents.Runner.run(
        agent, ASK_WEATHER, run_config=agents.RunConfig(tracing_disabled=True)
    )

    said = SAID + "weather?\nget_weather: 18C in Paris"
    assert result.final_output == City(name=said, country=said)

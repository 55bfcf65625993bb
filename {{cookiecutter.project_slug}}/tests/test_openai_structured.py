"""Structured output on the OpenAI-compatible endpoint: `response_format`, through the openai
SDK's own parse. The echo model answers JSON valid for the schema, its strings its reply."""

import json
from typing import Any, Literal

import openai
import pytest
from httpx import AsyncClient
from openai.types.chat import completion_create_params
from pydantic import BaseModel

from app.conversations.schemas import MAX_MESSAGE_CHARS
from tests.fake_openai import FakeOpenAI
from tests.test_openai_api import SYSTEM_PROMPT, sdk, user

ECHOED = f"[{SYSTEM_PROMPT}] Paris"


class Country(BaseModel):
    name: str
    code: Literal["FR", "DE"]


class City(BaseModel):
    name: str
    population: int
    country: Country
    nickname: str | None
    districts: list[str]


async def test_the_sdks_parse_gets_an_instance_of_the_model(client: AsyncClient) -> None:
    completion = await sdk(client).chat.completions.parse(
        model="agent", messages=[user("Paris")], response_format=City
    )

    city = completion.choices[0].message.parsed
    assert city == City(
        name=ECHOED,
        population=0,
        country=Country(name=ECHOED, code="FR"),
        nickname=ECHOED,
        districts=[ECHOED],
    )
    assert completion.choices[0].finish_reason == "stop"


async def test_the_sdks_streamed_parse_gets_the_same_instance(client: AsyncClient) -> None:
    whole = await sdk(client).chat.completions.parse(
        model="agent", messages=[user("Paris")], response_format=City
    )

    async with sdk(client).chat.completions.stream(
        model="agent", messages=[user("Paris")], response_format=City
    ) as stream:
        pieces = [event.delta async for event in stream if event.type == "content.delta"]
        streamed = await stream.get_final_completion()

    assert len(pieces) > 1
    assert "".join(pieces) == whole.choices[0].message.content
    assert streamed.choices[0].message.parsed == whole.choices[0].message.parsed


async def test_the_agents_tool_result_shows_in_the_structured_answer(client: AsyncClient) -> None:
    completion = await sdk(client).chat.completions.parse(
        model="agent", messages=[user("Paris\n/tool current_time")], response_format=City
    )

    city = completion.choices[0].message.parsed
    assert city is not None
    assert city.name.startswith(f"{ECHOED}\ncurrent_time: ")


@pytest.mark.parametrize(
    ("response_format", "answer"),
    [
        ({"type": "json_object"}, {"echo": ECHOED}),
        ({"type": "text"}, None),
    ],
    ids=["json_object", "text"],
)
async def test_json_mode_answers_an_object_and_text_mode_text(
    client: AsyncClient, response_format: Any, answer: Any
) -> None:
    completion = await sdk(client).chat.completions.create(
        model="agent", messages=[user("Paris")], response_format=response_format
    )

    content = str(completion.choices[0].message.content)
    assert (json.loads(content) if answer else content) == (answer or ECHOED)


async def test_the_format_reaches_an_openai_model_as_sent(
    openai_client: AsyncClient, fake_openai: FakeOpenAI
) -> None:
    schema = City.model_json_schema()
    response_format: completion_create_params.ResponseFormat = {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": schema, "strict": True},
    }

    await sdk(openai_client).chat.completions.create(
        model="agent", messages=[user("Paris")], response_format=response_format
    )

    assert fake_openai.requests[-1]["response_format"] == response_format


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ({"type": "xml"}, "response_format"),
        ({"type": "json_schema"}, "response_format.json_schema.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "a city"}},
            "response_format.json_schema.json_schema.name",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "big", "schema": {"description": "x" * MAX_MESSAGE_CHARS}},
            },
            "response_format.json_schema.json_schema.schema",
        ),
    ],
    ids=["unknown-type", "no-schema-spec", "bad-name", "too-large"],
)
async def test_a_malformed_response_format_gets_openais_422(
    client: AsyncClient, response_format: Any, param: str
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await sdk(client).chat.completions.create(
            model="agent", messages=[user("Paris")], response_format=response_format
        )

    error = refused.value
    assert (error.type, error.param) == ("invalid_request_error", param)
    assert error.message.startswith(f"Error code: 422 - {param}: ")

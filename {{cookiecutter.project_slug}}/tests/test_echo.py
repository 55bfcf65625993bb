"""The echo provider's structured answers: JSON valid for the schema a client asks for."""

import json
from enum import Enum
from typing import Any, Literal

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field, RootModel

from app.llm.base import ChatMessage, Completion, OutputFormat
from app.llm.echo import EchoProvider


class Size(Enum):
    SMALL = "small"
    LARGE = "large"


class Place(BaseModel):
    country: str
    size: Size


class Node(BaseModel):
    """Recursive: a tree of any depth."""

    label: str
    children: list["Node"] = []
    parent: "Node | None" = None


class City(BaseModel):
    name: str = Field(max_length=5)
    code: str = Field(min_length=15)
    population: int = Field(gt=0)
    area: float = Field(ge=0.5)
    capital: bool
    kind: Literal["city"]
    place: Place
    mayor: str | None
    districts: list[Place]
    counts: dict[str, int]
    tree: Node


SCHEMAS: dict[str, dict[str, Any]] = {
    "pydantic": City.model_json_schema(),
    "json_object": {"type": "object"},
    # OpenAI's strict form: every field required, no others allowed.
    "strict": {
        "type": "object",
        "properties": {"answer": {"type": ["string", "null"]}, "tags": {"type": "array"}},
        "required": ["answer", "tags"],
        "additionalProperties": False,
    },
    # {"$ref": "#/$defs/Place", "$defs": ...}: a $ref at the top.
    "root_ref": RootModel[Place].model_json_schema(),
}


async def _answer(schema: dict[str, Any], *messages: ChatMessage) -> Completion:
    return await EchoProvider().complete(
        messages or (ChatMessage("user", "hello there"),), (), OutputFormat("answer", schema)
    )


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
async def test_the_answer_is_json_valid_for_the_schema(schema: dict[str, Any]) -> None:
    answer = json.loads((await _answer(schema)).content)

    assert list(Draft202012Validator(schema).iter_errors(answer)) == []


async def test_its_strings_carry_the_echo_and_pydantic_reads_it_back() -> None:
    city = City.model_validate_json((await _answer(City.model_json_schema())).content)

    assert (city.mayor, city.place.country, city.tree.label) == ("hello there",) * 3
    # Within the lengths allowed.
    assert (city.name, city.code) == ("hello", "hello there....")
    assert (city.population, city.area, city.capital, city.place.size) == (1, 0.5, True, Size.SMALL)
    assert city.counts == {"echo": 0}


async def test_the_answer_shows_the_tool_results_and_streams_as_the_same_json() -> None:
    calls = (await _answer({"type": "string"}, ChatMessage("user", "/tool t\nhi"))).tool_calls
    messages = (
        ChatMessage("user", "/tool t\nhi"),
        ChatMessage("assistant", "", calls),
        ChatMessage("tool", "42", tool_call_id=calls[0].id),
    )
    output = OutputFormat("answer", {"type": "object", "properties": {"text": {"type": "string"}}})

    pieces = [p async for p in EchoProvider().stream(messages, (), output)]

    assert [call.name for call in calls] == ["t"]
    assert isinstance(whole := pieces[-1], Completion)
    assert json.loads(whole.content) == {"text": "hi\nt: 42"}
    assert "".join(p for p in pieces[:-1] if isinstance(p, str)) == whole.content

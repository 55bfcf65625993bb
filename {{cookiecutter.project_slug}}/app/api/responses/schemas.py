"""The part of the Responses API (OpenAI's, and the Open Responses specification) this endpoint
reads.

Requests: the fields clients send, extra ones (temperature, top_p, reasoning...) accepted and
ignored: the agent's model settings are the server's. Input items: messages, the client's
function calls and their outputs, the agent's own tool calls as this api returned them
(`mcp_call`, so a client that replays a whole exchange may), and answers to approval requests.
What it answers is in objects.py."""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from app.api.openai.schemas import FUNCTION_NAME, MAX_CLIENT_TOOLS, MAX_ID_CHARS
from app.conversations.schemas import MAX_MESSAGE_CHARS


class ContentIn(BaseModel):
    """A text part of an input message; images and files are not taken (422 naming the part)."""

    type: Literal["input_text", "output_text", "text"]
    text: str


def _bounded_text(content: str | list[ContentIn]) -> str | list[ContentIn]:
    if len(text_of(content)) > MAX_MESSAGE_CHARS:
        raise ValueError(f"must hold at most {MAX_MESSAGE_CHARS} characters")
    return content


def text_of(content: str | list[ContentIn]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


class MessageIn(BaseModel):
    # The type may be left out, as the openai SDK's "easy" input messages do.
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentIn]

    _bounded = field_validator("content")(_bounded_text)


class FunctionCallIn(BaseModel):
    """A call of a client's function that an earlier response returned, sent back."""

    type: Literal["function_call"]
    call_id: str = Field(max_length=MAX_ID_CHARS)
    name: str = Field(max_length=MAX_ID_CHARS)
    arguments: str = Field(max_length=MAX_MESSAGE_CHARS)


class FunctionCallOutputIn(BaseModel):
    """What the client's function answered to a call."""

    type: Literal["function_call_output"]
    call_id: str = Field(max_length=MAX_ID_CHARS)
    output: str | list[ContentIn]

    _bounded = field_validator("output")(_bounded_text)


class McpCallIn(BaseModel):
    """A call of the agent's own tools as an earlier response returned it, sent back whole."""

    type: Literal["mcp_call"]
    id: str = Field(max_length=MAX_ID_CHARS)
    name: str = Field(max_length=MAX_ID_CHARS)
    arguments: str = Field(max_length=MAX_MESSAGE_CHARS)
    output: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    error: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)


class ApprovalResponseIn(BaseModel):
    """A person's decision on a call an earlier response waits on (its approval request)."""

    type: Literal["mcp_approval_response"]
    approval_request_id: str = Field(max_length=MAX_ID_CHARS)
    approve: bool
    reason: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)


class ReasoningIn(BaseModel):
    """A reasoning item a client replays: taken and left out (this api returns none)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["reasoning"]


def _item_type(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "")
    return str(kind)


InputItem = Annotated[
    Annotated[MessageIn, Tag("message")]
    | Annotated[FunctionCallIn, Tag("function_call")]
    | Annotated[FunctionCallOutputIn, Tag("function_call_output")]
    | Annotated[McpCallIn, Tag("mcp_call")]
    | Annotated[ApprovalResponseIn, Tag("mcp_approval_response")]
    | Annotated[ReasoningIn, Tag("reasoning")],
    Discriminator(_item_type),
]


class FunctionToolIn(BaseModel):
    """A function the client declares and runs itself; other tool types are not taken."""

    type: Literal["function"]
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _bounded(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if len(json.dumps(parameters)) > MAX_MESSAGE_CHARS:
            raise ValueError(f"must be at most {MAX_MESSAGE_CHARS} characters as JSON")
        return parameters


class TextFormat(BaseModel):
    type: Literal["text"] = "text"


class JsonObjectFormat(BaseModel):
    type: Literal["json_object"]


class JsonSchemaFormat(BaseModel):
    """The JSON schema the answer's text must be valid for (structured output)."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["json_schema"]
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    # "schema" shadows a BaseModel attribute: an alias keeps the wire name.
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    @field_validator("json_schema")
    @classmethod
    def _bounded(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(schema)) > MAX_MESSAGE_CHARS:
            raise ValueError(f"must be at most {MAX_MESSAGE_CHARS} characters as JSON")
        return schema


class TextConfig(BaseModel):
    format: TextFormat | JsonObjectFormat | JsonSchemaFormat = Field(
        default_factory=TextFormat, discriminator="type"
    )


class CreateResponse(BaseModel):
    # Unknown fields are ignored (pydantic's default, said here because clients rely on it).
    model_config = ConfigDict(extra="ignore")

    model: str
    # A string is one user message. Its upper bound is openai_api.max_messages (a setting).
    input: list[InputItem] = Field(min_length=1)
    instructions: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    tools: list[FunctionToolIn] = Field(default_factory=list, max_length=MAX_CLIENT_TOOLS)
    text: TextConfig = Field(default_factory=TextConfig)
    previous_response_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    background: bool = False
    stream: bool = False

    @field_validator("input", mode="before")
    @classmethod
    def _one_message(cls, value: Any) -> Any:
        # As a list, so that an error names the item (input[0].content), not a union's branch.
        return [{"role": "user", "content": value}] if isinstance(value, str) else value

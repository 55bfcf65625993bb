"""The part of OpenAI's chat-completions format this endpoint reads, and what it answers.

Requests: what OpenAI clients send, extra fields (temperature, top_p...) accepted and
ignored: the agent's model settings are the server's. `tools` are the client's own functions:
the model may call them beside the agent's tools, and such a call comes back to the client to
run. `response_format` asks for structured output: the answer's text is JSON of that schema.
Answers: the fields the openai SDK, Open WebUI and LibreChat read."""

import json
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from app.conversations.schemas import MAX_MESSAGE_CHARS

FinishReason = Literal["stop", "length", "tool_calls"]
# Far beyond what a model asks for in one message.
MAX_TOOL_CALLS_PER_MESSAGE = 64
MAX_ID_CHARS = 200
# A client's tools: OpenAI's own limit on their number, and on a name (which every provider
# takes as it is); a description and a schema as large as a long message.
MAX_CLIENT_TOOLS = 128
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class TextPart(BaseModel):
    """A text part of a message; images and audio are not taken (422 naming the part)."""

    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str = Field(max_length=MAX_ID_CHARS)
    arguments: str = Field(max_length=MAX_MESSAGE_CHARS)


class ToolCallIn(BaseModel):
    """A tool call of an earlier assistant message, resent as part of the chat."""

    id: str = Field(max_length=MAX_ID_CHARS)
    type: Literal["function"] = "function"
    function: FunctionCall


class MessageIn(BaseModel):
    # developer is what newer clients send in place of system.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] = Field(
        default_factory=list, max_length=MAX_TOOL_CALLS_PER_MESSAGE
    )
    tool_call_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)

    @field_validator("content")
    @classmethod
    def _bounded(cls, content: str | list[TextPart] | None) -> str | list[TextPart] | None:
        if len(text_of(content)) > MAX_MESSAGE_CHARS:
            raise ValueError(f"must hold at most {MAX_MESSAGE_CHARS} characters")
        return content

    @model_validator(mode="after")
    def _tool_result_names_its_call(self) -> Self:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        return self

    @property
    def text(self) -> str:
        return text_of(self.content)


def text_of(content: str | list[TextPart] | None) -> str:
    if isinstance(content, list):
        return "".join(part.text for part in content)
    return content or ""


class StreamOptions(BaseModel):
    include_usage: bool | None = None


def _within_a_message(schema: dict[str, Any]) -> dict[str, Any]:
    # It goes to the model with every call: no larger than a long message.
    if len(json.dumps(schema)) > MAX_MESSAGE_CHARS:
        raise ValueError(f"must be at most {MAX_MESSAGE_CHARS} characters as JSON")
    return schema


# A client's JSON schema (a tool's arguments, an answer's shape), bounded.
JSONSchema = Annotated[dict[str, Any], AfterValidator(_within_a_message)]


class FunctionDefinition(BaseModel):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    # A JSON schema of the arguments; no schema: the function takes none.
    parameters: JSONSchema = Field(default_factory=lambda: {"type": "object"})


class ToolIn(BaseModel):
    """A function the client declares and runs itself."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class TextFormat(BaseModel):
    """Plain text, the default."""

    type: Literal["text"]


class JSONObjectFormat(BaseModel):
    """Any JSON object (OpenAI's JSON mode)."""

    type: Literal["json_object"]


class JSONSchemaSpec(BaseModel):
    name: str = Field(pattern=FUNCTION_NAME)
    # "schema" as a field name would shadow BaseModel.schema(): the alias keeps the wire name.
    schema_: JSONSchema = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    # OpenAI's default: the model tries for the schema without being held to it.
    strict: bool | None = None


class JSONSchemaFormat(BaseModel):
    """JSON valid for the client's schema (structured output)."""

    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")
]


class ChatCompletionRequest(BaseModel):
    # Unknown fields are ignored (pydantic's default, said here because clients rely on it).
    model_config = ConfigDict(extra="ignore")

    model: str
    # Its upper bound is openai_api.max_messages, checked by the router (a setting).
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[ToolIn] = Field(default_factory=list, max_length=MAX_CLIENT_TOOLS)
    response_format: ResponseFormat | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    # OpenAI's field, in seconds since the epoch; 0: the agent has no release date.
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    # None when the answer is only calls of the client's tools, as OpenAI sends it.
    content: str | None
    tool_calls: list[ToolCallIn] | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut


class ToolCallDelta(ToolCallIn):
    """A call of a client's tool in a chunk: whole, with its place in the message's calls."""

    index: int


class Delta(BaseModel):
    """What one chunk adds to the message: only the fields it sets are sent."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @model_serializer(mode="wrap")
    def _only_what_it_adds(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {name: value for name, value in handler(self).items() if value is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which OpenAI clients show to their users."""

    error: ErrorDetail

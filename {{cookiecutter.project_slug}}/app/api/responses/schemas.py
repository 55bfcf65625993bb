"""The part of the Responses API (OpenAI's, and the Open Responses specification) this endpoint
reads, and what it answers.

Requests: the fields clients send, extra ones (temperature, top_p, reasoning...) accepted and
ignored: the agent's model settings are the server's. Input items: messages, the client's
function calls and their outputs, the agent's own tool calls as this api returned them
(`mcp_call`, so a client that replays a whole exchange may), and answers to approval requests.
Answers: a response object and its streamed events, as the specification shapes them. The
agent's own tool calls and approval requests use OpenAI's item types for them (`mcp_call`,
`mcp_approval_request`): the openai SDKs and the OpenAI Agents SDK know them by those names."""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from app.api.openai.schemas import FUNCTION_NAME, MAX_CLIENT_TOOLS, MAX_ID_CHARS
from app.conversations.schemas import MAX_MESSAGE_CHARS

Status = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]


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


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)


class MessageOut(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed"] = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallOut(BaseModel):
    """A call of one of the client's functions: the client runs it and sends its output."""

    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed"] = "completed"


class McpCallOut(BaseModel):
    """A call of one of the agent's own tools, run here, with what it answered."""

    type: Literal["mcp_call"] = "mcp_call"
    id: str
    server_label: str
    name: str
    arguments: str
    output: str | None
    error: str | None = None
    status: Literal["in_progress", "completed"] = "completed"


class ApprovalRequestOut(BaseModel):
    """A call of the agent's tools that waits for a person: answer it with an
    mcp_approval_response item (approval_request_id: this id) in a response that continues
    this one (previous_response_id)."""

    type: Literal["mcp_approval_request"] = "mcp_approval_request"
    id: str
    server_label: str
    name: str
    arguments: str


OutputItem = Annotated[
    MessageOut | FunctionCallOut | McpCallOut | ApprovalRequestOut, Field(discriminator="type")
]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)


class IncompleteDetails(BaseModel):
    # max_steps: the agent's step bound (agent.max_steps) ended it while the model wanted tools.
    reason: str


class ResponseError(BaseModel):
    code: str
    message: str


class FunctionToolOut(BaseModel):
    type: Literal["function"] = "function"
    name: str
    description: str | None
    parameters: dict[str, Any] | None
    strict: bool | None


class TextOut(BaseModel):
    format: dict[str, Any]


class ResponseObject(BaseModel):
    """A response: its status, what it produced so far, and the request's settings echoed
    (those this api does not take are reported at their values here)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None
    status: Status
    incomplete_details: IncompleteDetails | None = None
    model: str
    previous_response_id: str | None
    instructions: str | None
    output: list[OutputItem]
    error: ResponseError | None = None
    tools: list[FunctionToolOut]
    tool_choice: Literal["auto"] = "auto"
    truncation: Literal["disabled"] = "disabled"
    parallel_tool_calls: bool = True
    text: TextOut
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    temperature: float = 1.0
    reasoning: None = None
    usage: ResponseUsage | None
    max_output_tokens: None = None
    max_tool_calls: None = None
    store: bool = True
    background: bool
    service_tier: Literal["default"] = "default"
    metadata: dict[str, str] = Field(default_factory=dict)
    safety_identifier: None = None
    prompt_cache_key: None = None


class StreamError(BaseModel):
    """The payload of a streamed `error` event (followed by response.failed)."""

    type: str
    code: str | None
    message: str
    param: str | None = None

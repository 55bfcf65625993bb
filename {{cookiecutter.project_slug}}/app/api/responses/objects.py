"""What the Responses API answers: a response object and its output items, as the Open
Responses specification shapes them. The agent's own tool calls and its approval requests use
OpenAI's item types for them (`mcp_call`, `mcp_approval_request`): the openai SDKs and the
OpenAI Agents SDK know them by those names, and the specification leaves such items to each
provider."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Status = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]


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

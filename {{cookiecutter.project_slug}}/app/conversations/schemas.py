"""Conversation API shapes."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.agent.loop import DoneEvent, StopReason
from app.agent.tools import ToolResult
from app.conversations.models import Message
from app.llm.base import ToolCall

MAX_MESSAGE_CHARS = 32_000
MAX_FILES_PER_MESSAGE = 10


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL characters: refuse them here, as a 422, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, max_length=200)


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str | None
    created_at: datetime


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    file_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_FILES_PER_MESSAGE)


class ToolCallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    # JSON text, as the model wrote it.
    arguments: str


def tool_call_data(call: ToolCall) -> dict[str, Any]:
    """A tool_call event's data, in a message's stream and a run's alike."""
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def tool_result_data(call: ToolCall, result: ToolResult) -> dict[str, Any]:
    """A tool_result event's data, in a message's stream and a run's alike."""
    return {
        "tool_call_id": call.id,
        "name": call.name,
        "content": result.content,
        "is_error": result.is_error,
    }


class UsageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    prompt_tokens: int
    completion_tokens: int
    # Of prompt_tokens: read from, and written to, the provider's prompt cache.
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: Literal["user", "assistant", "tool"]
    content: str
    file_ids: list[uuid.UUID]
    # What an assistant message asks for; which call a tool message answers.
    tool_calls: list[ToolCallOut] = []
    tool_call_id: str | None = None
    # The model call that wrote an assistant message: who answered, and its tokens.
    provider: str | None = None
    model: str | None = None
    usage: UsageOut | None = None
    created_at: datetime


class ConversationDetail(ConversationOut):
    # The newest messages asked for (limit), oldest first; earlier ones exist when
    # has_earlier_messages is true: ask again with before set to the first message's id.
    messages: list[MessageOut]
    has_earlier_messages: bool


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    # Exact up to 10,000; beyond, 10,000 with total_is_exact false (counting costs per row).
    total: int
    total_is_exact: bool
    limit: int
    offset: int
    # Older conversations follow this page: ask with before set to the last item's id.
    has_more: bool


class Exchange(BaseModel):
    """A user message, the assistant's last reply, and every step the turn took."""

    user_message: MessageOut
    assistant_message: MessageOut
    # Every message stored after the user's: model steps and tool results, in order.
    steps: list[MessageOut]
    stop_reason: StopReason
    usage: UsageOut

    @classmethod
    def of(cls, user_message: Message, done: DoneEvent[Message]) -> "Exchange":
        steps = [MessageOut.model_validate(step) for step in done.steps]
        return cls(
            user_message=MessageOut.model_validate(user_message),
            assistant_message=next(s for s in reversed(steps) if s.role == "assistant"),
            steps=steps,
            stop_reason=done.stop_reason,
            usage=UsageOut.model_validate(done.usage),
        )

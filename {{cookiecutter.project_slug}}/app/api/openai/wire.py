"""A turn of the agent in OpenAI's chat-completions format: the messages it starts from,
and its events as one chat.completion or as chat.completion.chunk events."""

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from app.agent.loop import DoneEvent, ErrorEvent, Event, StopReason, TokenEvent, ToolResultEvent
from app.api.errors import field_error, refuse_taken_tool_names
from app.api.openai import errors
from app.api.openai.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorDetail,
    FinishReason,
    FunctionCall,
    JSONObjectFormat,
    JSONSchemaFormat,
    MessageIn,
    ToolCallDelta,
    ToolCallIn,
    UsageOut,
)
from app.llm.base import ChatMessage, Completion, OutputFormat, ToolCall, ToolSpec, Usage
from app.turns import Step

# OpenAI's error type and code for a spent quota: clients know not to retry it soon.
QUOTA = "insufficient_quota"
# max_steps: the model still wanted tools when the turn stopped, as "length" says it was cut.
FINISH: dict[StopReason, FinishReason] = {
    "completed": "stop",
    "max_steps": "length",
    "cancelled": "stop",
    "interrupted": "stop",
    "client_tools": "tool_calls",
}
# Between the texts of two model calls (before and after tools), so they do not run together.
STEP_BREAK = "\n\n"
DONE = "[DONE]"


def check_chat(body: ChatCompletionRequest, max_messages: int) -> None:
    """Refuse more messages than the setting allows, and a tool call with no tool message
    answering it (as OpenAI does): the turn would run it without the model asking."""
    if len(body.messages) > max_messages:
        detail = f"List should have at most {max_messages} items after validation"
        raise RequestValidationError([field_error("too_long", ("messages",), detail)])
    answered = {m.tool_call_id for m in body.messages if m.role == "tool"}
    for index, message in enumerate(body.messages):
        for call in message.tool_calls:
            if call.id not in answered:
                detail = f"tool call {call.id} has no tool message answering it"
                location = ("messages", index, "tool_calls")
                error = field_error("unanswered_tool_call", location, detail)
                raise RequestValidationError([error])


def chat_message(message: MessageIn) -> ChatMessage:
    """A request's message as the agent's own."""
    if message.role in ("system", "developer"):
        return ChatMessage("system", message.text)
    if message.role == "tool":
        return ChatMessage("tool", message.text, tool_call_id=message.tool_call_id)
    if message.role == "assistant":
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls
        )
        return ChatMessage("assistant", message.text, calls)
    return ChatMessage("user", message.text)


def failure(event: ErrorEvent) -> ErrorBody:
    """OpenAI's error object for a failed turn: a spent quota, or the model's failure."""
    kind, code = (QUOTA, QUOTA) if event.refusal else ("server_error", "provider_error")
    return ErrorBody(error=ErrorDetail(message=event.detail, type=kind, code=code))


def failed(event: ErrorEvent) -> JSONResponse:
    """A failed turn's answer: 502, or OpenAI's to a spent quota, 429 insufficient_quota with
    Retry-After to when the budget starts again, and x-should-retry: false, which tells the
    openai SDKs not to retry it at once (they retry other 429s)."""
    if event.refusal is None:
        return JSONResponse(failure(event).model_dump(), status_code=502)
    headers = {"Retry-After": str(event.refusal.retry_after), "x-should-retry": "false"}
    return JSONResponse(failure(event).model_dump(), status_code=429, headers=headers)


def model_not_found(asked: str, served: str) -> JSONResponse:
    """OpenAI's answer to a model it does not have (404), which clients show as it is."""
    message = f"The model `{asked}` does not exist; this endpoint serves `{served}`"
    body = errors.error(404, message, code="model_not_found", param="model")
    return JSONResponse(body, status_code=404)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer's identity, the same on each of its chunks."""

    model: str
    id: str
    created: int

    @classmethod
    def to(cls, model: str) -> "Reply":
        return cls(model, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))

    def completion(self, done: DoneEvent[Step]) -> ChatCompletion:
        texts = [s.content for s in done.steps if isinstance(s, Completion) and s.content]
        content = STEP_BREAK.join(texts)
        calls = client_calls(done)
        choice = Choice(
            message=AssistantMessage(
                content=content or None if calls else content, tool_calls=calls
            ),
            finish_reason=FINISH[done.stop_reason],
        )
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=_usage(done.usage),
        )

    def chunk(
        self, delta: Delta | None, finish: FinishReason | None = None, usage: Usage | None = None
    ) -> str:
        # As OpenAI sends them: finish_reason null until the last choice, usage only on a
        # chunk of its own (with no choice).
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)],
            usage=None if usage is None else _usage(usage),
        )
        return chunk.model_dump_json(exclude=None if usage else {"usage"})


async def chunks(
    events: AsyncIterator[Event[Step]], reply: Reply, *, include_usage: bool
) -> AsyncIterator[str]:
    """The turn as the data of chat.completion.chunk events, ending with [DONE]; a failed
    model call ends it with OpenAI's error object instead of a finish_reason."""
    yield reply.chunk(Delta(role="assistant", content=""))
    said = pending_break = False
    async for event in events:
        match event:
            case TokenEvent(content=content) if content:
                yield reply.chunk(Delta(content=STEP_BREAK + content if pending_break else content))
                said, pending_break = True, False
            case ToolResultEvent():
                pending_break = said
            case DoneEvent(stop_reason=reason, usage=usage):
                if calls := client_calls(event):
                    deltas = [ToolCallDelta(index=i, **c.model_dump()) for i, c in enumerate(calls)]
                    yield reply.chunk(Delta(tool_calls=deltas))
                yield reply.chunk(Delta(), FINISH[reason])
                if include_usage:
                    yield reply.chunk(None, usage=usage)
            case ErrorEvent():
                yield failure(event).model_dump_json()
    yield DONE


def client_tools(body: ChatCompletionRequest) -> list[ToolSpec]:
    """The client's functions as the model is offered them; a name of the agent's own tools
    is refused (422): its calls run here, never on the client."""
    names = [tool.function.name for tool in body.tools]
    refuse_taken_tool_names(names, lambda index: ("tools", index, "function", "name"))
    return [
        ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in body.tools
    ]


def output_format(body: ChatCompletionRequest) -> OutputFormat | None:
    """The JSON the answer must be, as response_format asks: json_object's is any object,
    which no provider can hold to strictly."""
    match body.response_format:
        case JSONSchemaFormat(json_schema=spec):
            return OutputFormat(spec.name, spec.schema_, strict=bool(spec.strict))
        case JSONObjectFormat():
            return OutputFormat("json_object", {"type": "object"}, strict=False)
    return None


def client_calls(done: DoneEvent[Step]) -> list[ToolCallIn] | None:
    """The calls of the client's tools a turn ended with, as OpenAI's tool_calls; else None."""
    if done.stop_reason != "client_tools":
        return None
    return [
        ToolCallIn(id=call.id, function=FunctionCall(name=call.name, arguments=call.arguments))
        for call in done.pending
    ]


def _usage(usage: Usage) -> UsageOut:
    return UsageOut(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
    )

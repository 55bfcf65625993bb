"""A turn's events as AG-UI events, encoded by AG-UI's own encoder.

A text message opens with the first token of a model call and closes at the next other
event; tool calls run here, by the agent, stream as start, args and end, then their result;
calls of the client's own tools (RunAgentInput.tools) stream alike with no result, last,
and RUN_FINISHED's outcome names them (pendingToolCallIds) for the client to run."""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from ag_ui.core import (
    BaseEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

from app.agent.loop import (
    DoneEvent,
    ErrorEvent,
    Event,
    Refusal,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.llm.base import ToolCall


async def encoded(events: AsyncIterator[Event[Any]], run: "Translation") -> AsyncIterator[bytes]:
    """The run's events as SSE frames, RUN_STARTED first, RUN_FINISHED or RUN_ERROR last."""
    encoder = EventEncoder()
    # Bytes, as the encoder framed them: sse-starlette sends bytes as they are.
    yield encoder.encode(RunStartedEvent(thread_id=run.thread_id, run_id=run.run_id)).encode()
    async for event in events:
        for translated in run.of(event):
            yield encoder.encode(translated).encode()


async def refused(refusal: Refusal) -> AsyncIterator[Event[Any]]:
    """A turn that ended before its first model call: the key's budget refused it."""
    yield ErrorEvent(refusal.detail, refusal)


@dataclass(slots=True)
class Translation:
    """One run's translation: its ids, and the text message open now."""

    thread_id: str
    run_id: str
    provider: str
    text_id: str | None = None
    # The assistant message of this model call, which its tool calls belong to: unknown
    # (left out) once a tool result has come, as the next call may be the next step's.
    parent_id: str | None = None

    def of(self, event: Event[Any]) -> Iterator[BaseEvent]:
        if isinstance(event, TokenEvent):
            if not event.content:
                return
            if self.text_id is None:
                self.text_id = self.parent_id = str(uuid.uuid4())
                yield TextMessageStartEvent(message_id=self.text_id, role="assistant")
            yield TextMessageContentEvent(message_id=self.text_id, delta=event.content)
            return
        if self.text_id is not None:
            yield TextMessageEndEvent(message_id=self.text_id)
            self.text_id = None
        match event:
            case ToolCallEvent(call=call):
                yield from self._call(call)
            case ToolResultEvent(call=call, result=result):
                self.parent_id = None
                yield ToolCallResultEvent(
                    message_id=str(uuid.uuid4()),
                    tool_call_id=call.id,
                    content=result.content,
                    role="tool",
                )
            case DoneEvent(stop_reason=reason, usage=usage, pending=pending):
                # The client's own calls: no TOOL_CALL_RESULT follows them, and the run's
                # outcome names them, for the client to run and answer in the next run.
                theirs = pending if reason == "client_tools" else ()
                for call in theirs:
                    yield from self._call(call)
                tokens = TokenUsage(
                    provider=self.provider,
                    input_tokens=usage.prompt_tokens,
                    output_tokens=usage.completion_tokens,
                    total_tokens=usage.prompt_tokens + usage.completion_tokens,
                )
                yield RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    result={"stop_reason": reason},
                    outcome=RunFinishedSuccessOutcome(
                        pending_tool_call_ids=[call.id for call in theirs]
                    )
                    if theirs
                    else None,
                    usage=[tokens],
                )
            case ErrorEvent(detail=detail, refusal=refusal):
                code = "provider_error" if refusal is None else "budget_exceeded"
                yield RunErrorEvent(message=detail, code=code)

    def _call(self, call: ToolCall) -> Iterator[BaseEvent]:
        yield ToolCallStartEvent(
            tool_call_id=call.id, tool_call_name=call.name, parent_message_id=self.parent_id
        )
        yield ToolCallArgsEvent(tool_call_id=call.id, delta=call.arguments)
        yield ToolCallEndEvent(tool_call_id=call.id)

"""A turn's events as AG-UI events, encoded by AG-UI's own encoder.

A text message opens with the first token of a model call and closes at the next other
event; tool calls (run here, by the agent) stream as start, args and end, then their result.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ag_ui.core import (
    BaseEvent,
    RunErrorEvent,
    RunFinishedEvent,
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
from app.llm.base import ToolCall, Usage


async def encoded(events: AsyncIterator[Event[Any]], run: "Translation") -> AsyncIterator[bytes]:
    """The run's events as SSE frames, RUN_STARTED first, RUN_FINISHED or RUN_ERROR last."""
    encoder = EventEncoder()
    # Bytes, as the encoder framed them: sse-starlette sends bytes as they are.
    yield encoder.encode(run.started()).encode()
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

    def started(self) -> RunStartedEvent:
        return RunStartedEvent(thread_id=self.thread_id, run_id=self.run_id)

    def of(self, event: Event[Any]) -> list[BaseEvent]:
        if isinstance(event, TokenEvent):
            return self._text(event.content)
        closed = self._close_text()
        match event:
            case ToolCallEvent(call=call):
                return [*closed, *self._call(call)]
            case ToolResultEvent(call=call, result=result):
                self.parent_id = None
                message_id = _new_id()
                content = result.content
                result_event = ToolCallResultEvent(
                    message_id=message_id, tool_call_id=call.id, content=content, role="tool"
                )
                return [*closed, result_event]
            case DoneEvent(stop_reason=reason, usage=usage):
                finished = RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.run_id,
                    result={"stop_reason": reason},
                    usage=[self._usage(usage)],
                )
                return [*closed, finished]
            case ErrorEvent(detail=detail, refusal=refusal):
                code = "provider_error" if refusal is None else "budget_exceeded"
                return [*closed, RunErrorEvent(message=detail, code=code)]
        return closed

    def _text(self, content: str) -> list[BaseEvent]:
        if not content:
            return []
        opened: list[BaseEvent] = []
        if self.text_id is None:
            self.text_id = self.parent_id = _new_id()
            opened.append(TextMessageStartEvent(message_id=self.text_id, role="assistant"))
        return [*opened, TextMessageContentEvent(message_id=self.text_id, delta=content)]

    def _close_text(self) -> list[BaseEvent]:
        if self.text_id is None:
            return []
        closed, self.text_id = TextMessageEndEvent(message_id=self.text_id), None
        return [closed]

    def _call(self, call: ToolCall) -> list[BaseEvent]:
        return [
            ToolCallStartEvent(
                tool_call_id=call.id, tool_call_name=call.name, parent_message_id=self.parent_id
            ),
            ToolCallArgsEvent(tool_call_id=call.id, delta=call.arguments),
            ToolCallEndEvent(tool_call_id=call.id),
        ]

    def _usage(self, usage: Usage) -> TokenUsage:
        return TokenUsage(
            provider=self.provider,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
        )


def _new_id() -> str:
    return str(uuid.uuid4())

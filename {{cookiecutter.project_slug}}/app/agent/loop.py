"""One turn of the agent: the model, the tools it asks for, their results, and again.

The turn yields events as they happen; the router only turns them into JSON or SSE. Every
step is stored as it ends, through a Recorder: a turn cut short keeps the steps it finished,
and a turn resumed (a background run retried on another worker) starts where it stopped.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.tools import Registry, ToolContext, ToolResult
from app.conversations import service
from app.conversations.models import Message
from app.conversations.schemas import StopReason
from app.llm.base import ChatMessage, Completion, LLMError, LLMProvider, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class TokenEvent:
    content: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    call: ToolCall
    result: ToolResult


@dataclass(frozen=True, slots=True)
class DoneEvent:
    steps: list[Message]
    stop_reason: StopReason
    usage: Usage


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    detail: str
    steps: list[Message] = field(default_factory=list)


Event = TokenEvent | ToolCallEvent | ToolResultEvent | DoneEvent | ErrorEvent


class Recorder(Protocol):
    """Where a turn's steps go, and whether it may go on."""

    async def step(self, completion: Completion) -> Message: ...

    async def result(self, call: ToolCall, result: ToolResult) -> Message: ...

    async def halt(self) -> StopReason | None:
        """Checked before each model call: a reason to stop now, or None to go on."""
        ...


@dataclass(frozen=True, slots=True)
class ConversationRecorder:
    """A turn a client waits for: steps go straight into the conversation."""

    sessionmaker: async_sessionmaker[AsyncSession]
    conversation_id: uuid.UUID

    async def step(self, completion: Completion) -> Message:
        async with self.sessionmaker() as session:
            return await service.add_model_step(
                session=session, conversation_id=self.conversation_id, completion=completion
            )

    async def result(self, call: ToolCall, result: ToolResult) -> Message:
        async with self.sessionmaker() as session:
            return await service.add_tool_result(
                session=session,
                conversation_id=self.conversation_id,
                call=call,
                content=result.content,
            )

    async def halt(self) -> StopReason | None:
        return None


@dataclass(frozen=True, slots=True)
class Turn:
    provider: LLMProvider
    registry: Registry
    tools: ToolContext
    recorder: Recorder
    max_steps: int

    async def run(self, history: list[ChatMessage], *, stream: bool) -> AsyncIterator[Event]:
        """Call the model up to max_steps times, running the tools it asks for in between."""
        history = list(history)
        steps: list[Message] = []
        usage = Usage()
        # A turn resumed after its tools were asked for runs the calls that got no result.
        async for event in self._tools(_unanswered(history), history, steps):
            yield event
        for _ in range(self.max_steps):
            if reason := await self.recorder.halt():
                yield DoneEvent(steps, reason, usage)
                return
            completion: Completion | None = None
            try:
                if stream:
                    async for piece in self.provider.stream(history, self.registry.specs):
                        if isinstance(piece, Completion):
                            completion = piece
                        else:
                            yield TokenEvent(piece)
                else:
                    completion = await self.provider.complete(history, self.registry.specs)
            except LLMError as exc:
                yield ErrorEvent(str(exc), steps)
                return
            if completion is None:
                yield ErrorEvent("the language model ended its answer early", steps)
                return
            usage += completion.usage
            steps.append(await self.recorder.step(completion))
            history.append(ChatMessage("assistant", completion.content, completion.tool_calls))
            if not completion.tool_calls:
                yield DoneEvent(steps, "completed", usage)
                return
            async for event in self._tools(completion.tool_calls, history, steps):
                yield event
        yield DoneEvent(steps, "max_steps", usage)

    async def _tools(
        self, calls: Sequence[ToolCall], history: list[ChatMessage], steps: list[Message]
    ) -> AsyncIterator[Event]:
        for call in calls:
            yield ToolCallEvent(call)
            result = await self.registry.call(call, self.tools)
            steps.append(await self.recorder.result(call, result))
            history.append(ChatMessage("tool", result.content, tool_call_id=call.id))
            yield ToolResultEvent(call, result)


def _unanswered(history: Sequence[ChatMessage]) -> list[ToolCall]:
    """The calls of the last assistant message that have no result after it."""
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        if message.role == "assistant":
            answered = {m.tool_call_id for m in history[index + 1 :] if m.role == "tool"}
            return [call for call in message.tool_calls if call.id not in answered]
        if message.role != "tool":
            return []
    return []

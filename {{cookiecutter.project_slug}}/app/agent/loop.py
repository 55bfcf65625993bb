"""One turn of the agent: the model, the tools it asks for, their results, and again.

The turn yields events as they happen; the router only turns them into JSON or SSE. Every
step is stored as it ends (in a transaction of its own), so a turn cut short keeps the steps
it finished.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.tools import Registry, ToolContext, ToolResult
from app.conversations import service
from app.conversations.models import Message
from app.llm.base import ChatMessage, Completion, LLMError, LLMProvider, ToolCall, Usage

StopReason = Literal["completed", "max_steps"]


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


@dataclass(frozen=True, slots=True)
class Turn:
    provider: LLMProvider
    registry: Registry
    tools: ToolContext
    sessionmaker: async_sessionmaker[AsyncSession]
    max_steps: int

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.tools.conversation_id

    async def run(self, history: list[ChatMessage], *, stream: bool) -> AsyncIterator[Event]:
        """Call the model up to max_steps times, running the tools it asks for in between."""
        history = list(history)
        steps: list[Message] = []
        usage = Usage()
        for _ in range(self.max_steps):
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
            steps.append(await self._store_step(completion))
            history.append(ChatMessage("assistant", completion.content, completion.tool_calls))
            if not completion.tool_calls:
                yield DoneEvent(steps, "completed", usage)
                return
            for call in completion.tool_calls:
                yield ToolCallEvent(call)
                result = await self.registry.call(call, self.tools)
                steps.append(await self._store_result(call, result))
                history.append(ChatMessage("tool", result.content, tool_call_id=call.id))
                yield ToolResultEvent(call, result)
        yield DoneEvent(steps, "max_steps", usage)

    async def _store_step(self, completion: Completion) -> Message:
        async with self.sessionmaker() as session:
            return await service.add_model_step(
                session=session, conversation_id=self.conversation_id, completion=completion
            )

    async def _store_result(self, call: ToolCall, result: ToolResult) -> Message:
        async with self.sessionmaker() as session:
            return await service.add_tool_result(
                session=session,
                conversation_id=self.conversation_id,
                call=call,
                content=result.content,
            )

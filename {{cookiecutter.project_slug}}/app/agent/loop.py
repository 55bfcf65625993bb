"""One turn of the agent: the model, the tools it asks for, their results, and again.

The turn yields events as they happen; the router only turns them into JSON or SSE. Every
step is stored as it ends, through a Recorder: a turn cut short keeps the steps it finished,
and a turn resumed (a background run retried on another worker) starts where it stopped."""

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.agent.tools import Registry, ToolContext, ToolResult
from app.llm.base import (
    ChatMessage,
    Completion,
    LLMError,
    LLMProvider,
    OutputFormat,
    ToolCall,
    ToolSpec,
    Usage,
)

# completed: the model answered without asking for tools; max_steps: it still asked;
# cancelled: a client cancelled the run; interrupted: its worker is stopping (run re-queued);
# awaiting_approval: a call of a tool in agent.require_approval waits for a person;
# client_tools: the model asked for tools the client runs (a chat completion's `tools`).
StopReason = Literal[
    "completed", "max_steps", "cancelled", "interrupted", "awaiting_approval", "client_tools"
]
# What a person decided about a call that needs approval. unattended: nobody can be asked
# during this turn (a client waits for it), so the call does not run.
Decision = Literal["approved", "denied", "unattended"]


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
class DoneEvent[S]:
    """The turn's end: the steps it stored (as its Recorder stored them) and why it ended."""

    steps: list[S]
    stop_reason: StopReason
    usage: Usage
    # With awaiting_approval: the calls waiting for a decision; with client_tools: the calls
    # the client is to run.
    pending: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A model call not made: it could cross a budget of the turn's key."""

    detail: str
    # Seconds until the budget it would cross starts again.
    retry_after: int


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    detail: str
    # Set when the turn ended because a model call was refused by a budget, not failed.
    refusal: Refusal | None = None


_RELEASING: set["asyncio.Future[None]"] = set()

type Event[S] = TokenEvent | ToolCallEvent | ToolResultEvent | DoneEvent[S] | ErrorEvent


class Recorder[S](Protocol):
    """Where a turn's steps go (S: what storing one returns), and whether it may go on."""

    async def step(self, completion: Completion) -> S: ...

    async def result(self, call: ToolCall, result: ToolResult) -> S: ...

    async def halt(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> StopReason | Refusal | None:
        """Checked before each model call: a reason to stop now, a refusal by the key's
        budget, or None to go on, the call's hold on the budget taken (the step that stores
        its answer settles it)."""
        ...

    async def release(self) -> None:
        """The model call ended without an answer to store: its hold on the budget goes."""
        ...

    async def decision(self, call: ToolCall) -> Decision | None:
        """For a call that needs approval: the decision stored for it, or None (not yet)."""
        ...


@dataclass(frozen=True, slots=True)
class Turn[S]:
    provider: LLMProvider
    registry: Registry
    tools: ToolContext
    recorder: Recorder[S]
    max_steps: int
    # Tool names whose calls need a person's approval (agent.require_approval).
    require_approval: frozenset[str] = frozenset()
    # Tools the client declared and runs itself: offered to the model beside the registry's;
    # a call of one ends the turn (client_tools), the agent's own calls of that step run first.
    client_tools: tuple[ToolSpec, ...] = ()
    # A JSON schema the answer's text must hold to (a client's structured output).
    output: OutputFormat | None = None

    async def run(self, history: list[ChatMessage], *, stream: bool) -> AsyncIterator[Event[S]]:
        """Call the model up to max_steps times, running the tools it asks for in between."""
        history = list(history)
        steps: list[S] = []
        usage = Usage()
        # Calls of the client's tools the last step asked for: the turn ends with them, once
        # the agent's own calls of that step have run.
        theirs = {spec.name for spec in self.client_tools}
        # A turn resumed after its tools were asked for first runs the calls that got no
        # result; the client's still unanswered are handed back to it again.
        unanswered = _unanswered(history)
        calls = [call for call in unanswered if call.name not in theirs]
        clients = tuple(call for call in unanswered if call.name in theirs)
        for step in itertools.count():
            async for event in self._answer(calls, history, steps, usage):
                yield event
                if isinstance(event, DoneEvent):
                    return
            if clients:
                yield DoneEvent(steps, "client_tools", usage, clients)
                return
            if step == self.max_steps:
                yield DoneEvent(steps, "max_steps", usage)
                return
            specs = [*self.registry.specs, *self.client_tools]
            stop = await self.recorder.halt(history, specs)
            if isinstance(stop, Refusal):
                yield ErrorEvent(stop.detail, stop)
                return
            if stop:
                yield DoneEvent(steps, stop, usage)
                return
            completion: Completion | None = None
            try:
                if stream:
                    async for piece in self.provider.stream(history, specs, self.output):
                        if isinstance(piece, Completion):
                            completion = piece
                        else:
                            yield TokenEvent(piece)
                else:
                    completion = await self.provider.complete(history, specs, self.output)
                if completion is None:
                    raise LLMError("the language model ended its answer early")
            except LLMError as exc:
                await self.recorder.release()
                yield ErrorEvent(str(exc))
                return
            except BaseException:
                # Cancelled mid-call (the client went away, the worker is stopping): the
                # hold goes now, not when it expires.
                await _released(self.recorder)
                raise
            usage += completion.usage
            steps.append(await self.recorder.step(completion))
            history.append(ChatMessage("assistant", completion.content, completion.tool_calls))
            if not completion.tool_calls:
                yield DoneEvent(steps, "completed", usage)
                return
            calls = [call for call in completion.tool_calls if call.name not in theirs]
            clients = tuple(call for call in completion.tool_calls if call.name in theirs)

    async def _answer(
        self, calls: Sequence[ToolCall], history: list[ChatMessage], steps: list[S], usage: Usage
    ) -> AsyncIterator[Event[S]]:
        """Run the calls in order up to the first one still waiting for a person; then end
        the turn awaiting approval of every call from there on that needs it."""
        decisions = {
            call.id: await self.recorder.decision(call)
            for call in calls
            if call.name in self.require_approval
        }
        waiting = [call for call in calls if call.id in decisions and decisions[call.id] is None]
        ready = calls[: calls.index(waiting[0])] if waiting else calls
        for call in ready:
            yield ToolCallEvent(call)
            result = await self._result(call, decisions.get(call.id, "approved"))
            steps.append(await self.recorder.result(call, result))
            history.append(ChatMessage("tool", result.content, tool_call_id=call.id))
            yield ToolResultEvent(call, result)
        if waiting:
            yield DoneEvent(steps, "awaiting_approval", usage, tuple(waiting))

    async def _result(self, call: ToolCall, decision: Decision | None) -> ToolResult:
        if decision == "denied":
            return self.registry.refuse(call, "denied", "the user denied this call")
        if decision == "unattended":
            reason = (
                "it needs a person's approval, which only a background run can wait for "
                "(POST /v1/conversations/{id}/runs); it did not run"
            )
            return self.registry.refuse(call, "needs_approval", reason)
        return await self.registry.call(call, self.tools)


async def _released(recorder: Recorder[Any]) -> None:
    """Release the hold even while the caller is being cancelled: the release runs as a task
    of its own, which the caller's cancellation does not reach."""
    release = asyncio.ensure_future(recorder.release())
    # Held until done: the event loop keeps only a weak reference to a task.
    _RELEASING.add(release)
    release.add_done_callback(_RELEASING.discard)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(release)


def _unanswered(history: Sequence[ChatMessage]) -> list[ToolCall]:
    """The calls of the last assistant message that have no result after it."""
    answered = set[str | None]()
    for message in reversed(history):
        if message.role != "tool":
            return [call for call in message.tool_calls if call.id not in answered]
        answered.add(message.tool_call_id)
    return []

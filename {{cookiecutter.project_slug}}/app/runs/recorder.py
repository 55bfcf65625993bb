"""How a background run's turn is stored: every step, decision and end, each written only
while the run is still the claim's that runs it."""

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.agent.loop import Decision, DoneEvent, Refusal, StopReason
from app.agent.tools import ToolResult
from app.conversations.models import Message
from app.conversations.schemas import MessageOut, tool_call_data, tool_result_data
from app.conversations.service import model_step
from app.core.db import utcnow
from app.llm.base import ChatMessage, Completion, ToolCall, ToolSpec, Usage
from app.runs import service, writing
from app.runs.models import Run
from app.runs.writing import Write
from app.spend.budgets import Account


class LeaseLostError(Exception):
    """The run is no longer this worker's (its lease ran out and it was taken over)."""


@dataclass
class RunRecorder:
    """Steps of a background run: each written only while the run is still this claim's.

    Round trips are what a busy worker spends its time on, so each write is one statement
    (runs/writing.py), and writes are shared where no guarantee needs one of their own. A model
    step that asks for tools is written at once, before any tool runs: a resumed run never
    runs the calls of a step it did not store. The result of a step's last call waits for
    the write that renews the lease before the next model call (a worker that dies in between
    runs that call again, as one that dies during the call does; no other tool runs in
    between), and the answer for the run's end. Every write
    checks the claim: a worker that lost its run writes none of it."""

    sessionmaker: async_sessionmaker[AsyncSession]
    run_id: uuid.UUID
    attempt: int
    lease: timedelta
    stopping: asyncio.Event
    account: Account
    # The run's tokens so far (as claimed): its done event tells the sum.
    usage: Usage = field(default_factory=Usage)
    # Set by a claim that found no cancel asked: the first model call, right after it, needs
    # no write of its own to renew the lease and look again (unless it takes a hold).
    claimed_now: bool = False
    requeue: bool = False
    # Set when the lease was found taken over: the run's work is cancelled.
    lost: bool = False
    # Sessions for a write that is one statement (autocommit: app.core.db); by default
    # sessionmaker's.
    alone: async_sessionmaker[AsyncSession] | None = None
    # What the next write carries.
    _next: Write = field(default_factory=Write)
    # The calls of the step this attempt stored last that have no result yet; None before
    # it stored one.
    _unanswered: set[str] | None = None

    async def renew(self) -> None:
        await self._alone(Write())

    async def step(self, completion: Completion) -> Message:
        message = self._message(**model_step(completion))
        write = self._next
        write.messages.append(_row(message))
        write.calls.append(self.account.ledger_values(completion))
        write.usage += completion.usage
        write.provider, write.model = completion.provider, completion.model
        # The write drops the call's hold: the run's id is its holder.
        write.releasing = self.account.holding
        if not completion.tool_calls:
            # The answer: stored with the run's end.
            return message
        for call in completion.tool_calls:
            write.event("tool_call", tool_call_data(call))
        await self._send()
        self._unanswered = {call.id for call in completion.tool_calls}
        return message

    async def result(self, call: ToolCall, result: ToolResult) -> Message:
        message = self._message(role="tool", content=result.content, tool_call_id=call.id)
        self._next.messages.append(_row(message))
        self._next.event("tool_result", tool_result_data(call, result))
        # Used up with its answer: a later call with the same id is asked about anew.
        self._next.answered.append(call.id)
        if self._unanswered is not None:
            self._unanswered.discard(call.id)
        if self._unanswered is None or self._unanswered:
            # Another call of the step may run before the next write (or which may is not
            # known: a resumed run's): this result is not left to be lost with it.
            await self._send()
        return message

    async def halt(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> StopReason | Refusal | None:
        claimed_now, self.claimed_now = self.claimed_now, False
        refusal = None
        if self.account.budget is None:
            # The results so far stored, the lease renewed, a cancel looked for: one statement.
            cancelled = False if claimed_now and not self._next else await self._send()
        else:
            # One transaction: that, and the call's hold on the key's budget taken.
            async with self.sessionmaker() as session:
                cancelled = await self._send(await session.connection())
                if not cancelled and not self.stopping.is_set():
                    refusal = await self.account.hold(session, messages, tools)
                await session.commit()
        if cancelled:
            return "cancelled"
        return "interrupted" if self.stopping.is_set() else refusal

    async def release(self) -> None:
        await self.account.release()

    async def decision(self, call: ToolCall) -> Decision | None:
        async with self.sessionmaker() as session:
            approvals = await session.scalar(select(Run.approvals).where(Run.id == self.run_id))
        approved = (approvals or {}).get(call.id, {}).get("approved")
        return None if approved is None else "approved" if approved else "denied"

    async def finish(self, done: DoneEvent[Message]) -> None:
        write = self._next
        write.keeps_lease = False
        if done.stop_reason == "interrupted":
            # Back to the queue without counting the attempt: nothing went wrong.
            write.status, write.given_back = "queued", 1
            write.event("requeued", {})
            self.requeue = True
        elif done.stop_reason == "awaiting_approval":
            # Parked until a person decides: no lease (the sweep leaves it alone), and
            # the attempt not counted, as nothing went wrong.
            write.status, write.given_back = "awaiting_approval", 1
            write.waiting = {
                c.id: {"name": c.name, "arguments": c.arguments, "approved": None}
                for c in done.pending
            }
            calls = [tool_call_data(c) for c in done.pending]
            write.event("approval_required", {"calls": calls})
        else:
            write.status = "cancelled" if done.stop_reason == "cancelled" else "succeeded"
            write.stop_reason = done.stop_reason
            usage = self.usage + write.usage
            data = service.done_data(write.status, write.stop_reason, usage)
            if answers := [s for s in done.steps if s.role == "assistant"]:
                answer = MessageOut.model_validate(answers[-1])
                data["assistant_message"] = answer.model_dump(mode="json")
            write.event("done", data)
        await self._send()

    async def fail(self, detail: str, *, refused: bool = False) -> None:
        """End the run failed; refused: a budget refused its next model call."""
        write = self._next
        write.keeps_lease, write.status, write.error = False, "failed", detail
        write.stop_reason = "budget_exceeded" if refused else None
        write.event(
            "error", {"detail": detail, **({"stop_reason": write.stop_reason} if refused else {})}
        )
        await self._send()

    async def _send(self, connection: AsyncConnection | None = None) -> bool:
        """Write what waits for the next write, in the caller's transaction or alone; whether
        a cancel of the run was asked for."""
        sent, self._next = self._next, Write()
        cancelled = await (self._alone(sent) if connection is None else self._in(connection, sent))
        self.usage += sent.usage
        if sent.releasing:
            self.account.holding = False
        return cancelled

    async def _alone(self, sent: Write) -> bool:
        async with (self.alone or self.sessionmaker)() as session:
            cancelled = await self._in(await session.connection(), sent)
            await session.commit()
        return cancelled

    async def _in(self, connection: AsyncConnection, sent: Write) -> bool:
        cancelled = await writing.write(connection, self.run_id, self.attempt, self.lease, sent)
        if cancelled is None:
            raise LeaseLostError(str(self.run_id))
        return cancelled

    def _message(self, **values: Any) -> Message:
        """A message of the run, every column a reader needs set now (it is stored later,
        and the run's done event describes the answer before it is)."""
        values.setdefault("tool_calls", [])
        return Message(
            id=uuid.uuid4(), run_id=self.run_id, file_ids=[], created_at=utcnow(), **values
        )


def _row(message: Message) -> dict[str, Any]:
    """The message's columns as the write stores them (the run gives the conversation)."""
    return {column: getattr(message, column) for column in _MESSAGE_COLUMNS}


_MESSAGE_COLUMNS = (
    "id",
    "role",
    "content",
    "file_ids",
    "tool_calls",
    "tool_call_id",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "created_at",
)

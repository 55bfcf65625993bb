"""How a background run's turn is stored: every step, decision and end, each written only
while the run is still the claim's that runs it."""

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Interval, String, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.loop import Decision, DoneEvent, Refusal, StopReason
from app.agent.tools import ToolResult
from app.conversations.models import Message
from app.conversations.schemas import MessageOut, tool_call_data, tool_result_data
from app.conversations.service import model_step
from app.core.db import utcnow
from app.llm.base import ChatMessage, Completion, ToolCall, ToolSpec, Usage
from app.runs import service
from app.runs.models import Run
from app.spend.bounds import HOLDS
from app.spend.budgets import Account

# Every write of a run's step renews its lease with this one statement, built once: building
# it for each write was a large share of a busy worker's CPU.
# The session is always new, so no loaded object needs the UPDATE's values copied into it.
_RENEW = (
    update(Run)
    .where(
        Run.id == bindparam("run_id"),
        Run.attempts == bindparam("attempt"),
        Run.status == "running",
    )
    .values(
        lease_until=func.clock_timestamp() + bindparam("lease", type_=Interval),
        # A model step's tokens are added in the transaction that stores the step: the run's
        # usage is then the sum over every step stored, whichever attempt stored it.
        prompt_tokens=Run.prompt_tokens + bindparam("prompt_tokens"),
        completion_tokens=Run.completion_tokens + bindparam("completion_tokens"),
        provider=func.coalesce(bindparam("provider", type_=String), Run.provider),
        model=func.coalesce(bindparam("model", type_=String), Run.model),
    )
    .returning(Run)
    .execution_options(synchronize_session=False)
)

# The same, also deleting the run's hold on its key's budget (spend_holds, holder = the run's
# id): a model step's write settles its call's hold without a statement of its own.
_RENEW_RELEASING = _RENEW.add_cte(
    delete(HOLDS).where(HOLDS.c.holder == bindparam("run_id")).cte("released")
)


class LeaseLostError(Exception):
    """The run is no longer this worker's (its lease ran out and it was taken over)."""


@dataclass
class _Staged:
    """What waits for the run's next write: tool results (the transaction before the next
    model call stores them with its lease check), and the answer (stored as the run ends)."""

    messages: list[Message] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Calls whose stored approval their result uses up.
    answered: list[str] = field(default_factory=list)
    # The model step whose answer waits, with its tokens and ledger row.
    step: Completion | None = None

    def __bool__(self) -> bool:
        return bool(self.messages)


@dataclass
class RunRecorder:
    """Steps of a background run: each written only while the run is still this claim's.

    Round trips are what a busy worker spends its time on, so a step's writes share
    transactions where no guarantee needs one of their own. A model step that asks for tools
    is written at once, before any tool runs: a resumed run never calls them for a step it
    did not store. A tool result waits for the transaction that renews the lease before the
    next model call (a worker that dies in between runs that call again, as one that dies
    during the call does), and the answer for the run's end. Every write checks the claim:
    a worker that lost its run writes none of it."""

    sessionmaker: async_sessionmaker[AsyncSession]
    run_id: uuid.UUID
    attempt: int
    lease: timedelta
    stopping: asyncio.Event
    account: Account
    # Set by a claim that found no cancel asked: the first model call, right after it, needs
    # no transaction of its own to renew the lease and look again (unless it takes a hold).
    claimed_now: bool = False
    requeue: bool = False
    # Set when the lease was found taken over: the run's work is cancelled.
    lost: bool = False
    _staged: _Staged = field(default_factory=_Staged)

    async def renew(self) -> None:
        async with self.sessionmaker() as session:
            await self._renew(session)
            await session.commit()

    async def step(self, completion: Completion) -> Message:
        message = self._message(**model_step(completion))
        if not completion.tool_calls:
            # The answer: stored with the run's end, in the same transaction.
            self._staged.messages.append(message)
            self._staged.step = completion
            return message
        async with self.sessionmaker() as session:
            run = await self._write(session, completion)
            self._add(session, run, message)
            for call in completion.tool_calls:
                service.add_event(session, run, "tool_call", tool_call_data(call))
            await session.commit()
        return message

    async def result(self, call: ToolCall, result: ToolResult) -> Message:
        message = self._message(role="tool", content=result.content, tool_call_id=call.id)
        self._staged.messages.append(message)
        self._staged.events.append(("tool_result", tool_result_data(call, result)))
        self._staged.answered.append(call.id)
        return message

    async def halt(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> StopReason | Refusal | None:
        claimed_now, self.claimed_now = self.claimed_now, False
        if claimed_now and not self._staged and self.account.budget is None:
            return "interrupted" if self.stopping.is_set() else None
        # One transaction: the results so far stored, the lease renewed, and the call's hold
        # on the key's budget taken.
        async with self.sessionmaker() as session:
            run = await self._write(session)
            stop: StopReason | None = None
            if run.cancel_requested:
                stop = "cancelled"
            elif self.stopping.is_set():
                stop = "interrupted"
            refusal = None if stop else await self.account.hold(session, messages, tools)
            await session.commit()
        return stop or refusal

    async def release(self) -> None:
        await self.account.release()

    async def decision(self, call: ToolCall) -> Decision | None:
        async with self.sessionmaker() as session:
            approvals = await session.scalar(select(Run.approvals).where(Run.id == self.run_id))
        approved = (approvals or {}).get(call.id, {}).get("approved")
        return None if approved is None else "approved" if approved else "denied"

    async def finish(self, done: DoneEvent[Message]) -> None:
        async with self.sessionmaker() as session:
            run = await self._write(session)
            run.lease_until = None
            if done.stop_reason == "interrupted":
                # Back to the queue without counting the attempt: nothing went wrong.
                run.status, run.attempts = "queued", run.attempts - 1
                run.queued_at = func.clock_timestamp()
                service.add_event(session, run, "requeued", {})
                self.requeue = True
            elif done.stop_reason == "awaiting_approval":
                # Parked until a person decides: no lease (the sweep leaves it alone), and
                # the attempt not counted, as nothing went wrong.
                run.status, run.attempts = "awaiting_approval", run.attempts - 1
                waiting = {
                    c.id: {"name": c.name, "arguments": c.arguments, "approved": None}
                    for c in done.pending
                }
                run.approvals = {**run.approvals, **waiting}
                calls = [tool_call_data(c) for c in done.pending]
                service.add_event(session, run, "approval_required", {"calls": calls})
            else:
                run.status = "cancelled" if done.stop_reason == "cancelled" else "succeeded"
                run.stop_reason, run.finished_at = done.stop_reason, func.clock_timestamp()
                data = service.done_data(run)
                if answers := [s for s in done.steps if s.role == "assistant"]:
                    answer = MessageOut.model_validate(answers[-1])
                    data["assistant_message"] = answer.model_dump(mode="json")
                service.add_event(session, run, "done", data)
            await session.commit()

    async def fail(self, detail: str, *, refused: bool = False) -> None:
        """End the run failed; refused: a budget refused its next model call."""
        async with self.sessionmaker() as session:
            run = await self._write(session)
            run.status, run.error = "failed", detail
            run.stop_reason = "budget_exceeded" if refused else None
            run.lease_until, run.finished_at = None, func.clock_timestamp()
            data = {"detail": detail, **({"stop_reason": run.stop_reason} if refused else {})}
            service.add_event(session, run, "error", data)
            await session.commit()

    async def _write(self, session: AsyncSession, step: Completion | None = None) -> Run:
        """In the caller's transaction: renew the lease if the claim is still ours, and add
        what was staged for this write; a model step's tokens and its hold's settling too."""
        staged, self._staged = self._staged, _Staged()
        step = step or staged.step
        # The lease's statement also drops the call's hold (the run's id is its holder).
        run = await self._renew(session, step, releasing=step is not None and self.account.holding)
        for message in staged.messages:
            self._add(session, run, message)
        for name, data in staged.events:
            service.add_event(session, run, name, data)
        if used := set(staged.answered) & run.approvals.keys():
            # Used up with its answer: a later call with the same id is asked about anew.
            run.approvals = {k: v for k, v in run.approvals.items() if k not in used}
        if step is not None:
            self.account.settle_released(session, step)
        return run

    async def _renew(
        self, session: AsyncSession, step: Completion | None = None, *, releasing: bool = False
    ) -> Run:
        """Extend the lease, in the caller's transaction, if the claim is still ours; add
        the tokens of the model step this transaction stores, and who answered it."""
        usage = step.usage if step else Usage()
        claim = {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "lease": self.lease,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "provider": step.provider if step else None,
            "model": step.model if step else None,
        }
        run: Run | None = await session.scalar(_RENEW_RELEASING if releasing else _RENEW, claim)
        if run is None:
            raise LeaseLostError(str(self.run_id))
        return run

    def _message(self, **values: Any) -> Message:
        """A message of the run, every column a reader needs set now (it may be stored later,
        and the run's done event describes the answer before the flush)."""
        values.setdefault("tool_calls", [])
        return Message(
            id=uuid.uuid4(), run_id=self.run_id, file_ids=[], created_at=utcnow(), **values
        )

    @staticmethod
    def _add(session: AsyncSession, run: Run, message: Message) -> None:
        """A message of the run's conversation (no files of its own: written by the run)."""
        message.conversation_id = run.conversation_id
        session.add(message)

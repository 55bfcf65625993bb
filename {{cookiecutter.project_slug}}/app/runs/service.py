"""Run operations of the api: start, read, cancel, decide on approvals, follow events."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq_redis import ListQueueBroker

from app.conversations import service as conversations
from app.conversations.models import Conversation, Message
from app.conversations.schemas import MessageCreate
from app.core.db import utcnow
from app.core.metrics import Metrics
from app.core.queue import enqueue
from app.llm.base import Usage
from app.runs.models import FINISHED, STATUSES, Run, RunEvent
from app.runs.schemas import ApprovalDecision


class NotAwaitingError(Exception):
    """Decisions sent for a run that is not awaiting approval."""


class UndecidableError(Exception):
    """Decisions naming calls the run does not wait on, or one call twice: (index, why)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(why for _, why in problems))
        self.problems = problems


async def start_run(
    *,
    session: AsyncSession,
    conversation: Conversation,
    data: MessageCreate,
    queue: ListQueueBroker,
    metrics: Metrics,
) -> Run:
    """Store the user's message and a queued run for it, in one transaction, and send the
    run to the workers (UnknownFilesError: a file id is not the owner's, nothing stored)."""
    # The columns' defaults (queued, no attempt, no tokens) are set when the run is written.
    run = Run(owner=conversation.owner, conversation_id=conversation.id, queued_at=utcnow())
    session.add(run)
    # Commits the run with the message (and raises UnknownFilesError before either is kept).
    await conversations.add_user_message(session=session, conversation=conversation, data=data)
    # Without Redis the run is still stored as queued: the workers' sweep sends it again.
    await enqueue(queue, run.id, metrics)
    return run


async def get_run(
    *, session: AsyncSession, owner: str, run_id: uuid.UUID, lock: bool = False
) -> Run | None:
    """The owner's run (locked till commit with lock); None for another owner's, as for no run."""
    query = select(Run).where(Run.id == run_id, Run.owner == owner)
    return await session.scalar(query.with_for_update() if lock else query)


async def cancel_run(*, session: AsyncSession, run: Run) -> Run:
    """A queued or waiting run is cancelled now; a running one before its next model call."""
    if run.status in {"queued", "awaiting_approval"}:
        run.status, run.stop_reason, run.finished_at = "cancelled", "cancelled", utcnow()
        add_event(session, run, "done", done_data(run.status, run.stop_reason, run.usage))
    elif run.status == "running":
        run.cancel_requested = True
    await session.commit()
    return run


async def decide(
    *,
    session: AsyncSession,
    run: Run,
    decisions: Sequence[ApprovalDecision],
    queue: ListQueueBroker,
    metrics: Metrics,
) -> Run:
    """Store decisions on calls the run waits on; once none waits, queue it again."""
    if run.status != "awaiting_approval":
        raise NotAwaitingError(run.status)
    pending = {call.id for call in run.pending_approvals}
    approvals = dict(run.approvals)
    seen: set[str] = set()
    problems = []
    for index, decision in enumerate(decisions):
        call_id = decision.tool_call_id
        if call_id in seen:
            problems.append((index, f"tool call {call_id} is decided twice"))
        elif call_id not in pending:
            problems.append((index, f"tool call {call_id} is not awaiting approval"))
        else:
            approvals[call_id] = {**approvals[call_id], "approved": decision.approved}
        seen.add(call_id)
    if problems:
        raise UndecidableError(problems)
    run.approvals = approvals
    add_event(session, run, "approvals", {"decisions": [d.model_dump() for d in decisions]})
    ready = not run.pending_approvals
    if ready:
        run.status, run.queued_at = "queued", utcnow()
    await session.commit()
    if ready:
        # As start_run: without Redis the run stays queued and the sweep sends it again.
        await enqueue(queue, run.id, metrics)
    return run


def add_event(session: AsyncSession, run: Run, name: str, data: dict[str, Any]) -> None:
    session.add(RunEvent(run_id=run.id, name=name, data=data, created_at=utcnow()))


def done_data(status: str, stop_reason: str | None, usage: Usage) -> dict[str, Any]:
    """A done event's data: how the run ended, and the tokens of all its steps."""
    return {
        "status": status,
        "stop_reason": stop_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
    }


async def follow(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    after: int,
    seconds: float,
    poll_seconds: float,
) -> AsyncIterator[RunEvent]:
    """The run's events after the id `after`, as they are written, until the run has finished
    and all are read, or `seconds` have passed; a read that finds none waits `poll_seconds`.

    Each read takes a connection and gives it back before the next poll: a stream held open
    holds none of the pool. The status is read first: a finished run's last event was written
    with its status, so the events read then include it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with sessionmaker() as session:
            status = await session.scalar(select(Run.status).where(Run.id == run_id))
            found = list(
                await session.scalars(
                    select(RunEvent)
                    .where(RunEvent.run_id == run_id, RunEvent.id > after)
                    .order_by(RunEvent.id)
                    .limit(100)
                )
            )
        for event in found:
            after = event.id
            yield event
        if status in FINISHED and not found:
            return
        if not found:
            await asyncio.sleep(poll_seconds)


def steps_of(run_id: ColumnElement[uuid.UUID]) -> ScalarSelect[int]:
    """How many model steps the run has stored (they count toward its max_steps)."""
    return (
        select(func.count())
        .where(Message.run_id == run_id, Message.role == "assistant")
        .scalar_subquery()
    )


# The run's model steps so far and its last message, in one statement built once.
_PROGRESS = (
    select(Message, steps_of(bindparam("run_id")))
    .where(Message.run_id == bindparam("run_id"))
    .order_by(Message.created_at.desc(), Message.id.desc())
    .limit(1)
)


async def progress(*, session: AsyncSession, run_id: uuid.UUID) -> tuple[int, Message | None]:
    """Where a run resumes, after what its earlier attempts stored: how many model calls, and
    the run's answer if the last thing stored is one (a model step that asked for no tool)."""
    row = (await session.execute(_PROGRESS, {"run_id": run_id})).first()
    if row is None:
        return 0, None
    last, steps = row
    answered = last.role == "assistant" and not last.tool_calls
    return steps, last if answered else None


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """How many runs are in each status (every status, those with none included)."""
    rows = await session.execute(select(Run.status, func.count()).group_by(Run.status))
    return dict.fromkeys(STATUSES, 0) | dict(rows.all())

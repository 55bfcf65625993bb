"""Run operations of the api: create, read, cancel, and read a run's events."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations import service as conversations
from app.conversations.models import Conversation
from app.conversations.schemas import MessageCreate
from app.core.db import utcnow
from app.runs.models import FINISHED, Run, RunEvent


async def create_run(
    *, session: AsyncSession, conversation: Conversation, data: MessageCreate
) -> Run:
    """Store the user's message and a queued run for it, in one transaction."""
    run = Run(
        owner=conversation.owner,
        conversation_id=conversation.id,
        status="queued",
        attempts=0,
        cancel_requested=False,
        prompt_tokens=0,
        completion_tokens=0,
        queued_at=utcnow(),
    )
    session.add(run)
    # Commits the run with the message (and raises UnknownFilesError before either is kept).
    await conversations.add_user_message(session=session, conversation=conversation, data=data)
    return run


async def get_run(*, session: AsyncSession, owner: str, run_id: uuid.UUID) -> Run | None:
    """Return the owner's run; another owner's is as absent as an unknown id."""
    return await session.scalar(select(Run).where(Run.id == run_id, Run.owner == owner))


async def cancel_run(*, session: AsyncSession, run: Run) -> Run:
    """A queued run is cancelled now; a running one stops before its next model call."""
    if run.status == "queued":
        run.status, run.stop_reason, run.finished_at = "cancelled", "cancelled", utcnow()
        add_event(session, run, "done", done_data(run))
    elif run.status == "running":
        run.cancel_requested = True
    await session.commit()
    return run


def add_event(session: AsyncSession, run: Run, name: str, data: dict[str, Any]) -> None:
    session.add(RunEvent(run_id=run.id, name=name, data=data, created_at=utcnow()))


def done_data(run: Run) -> dict[str, Any]:
    return {
        "status": run.status,
        "stop_reason": run.stop_reason,
        "usage": {"prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens},
    }


async def events_after(
    *, session: AsyncSession, run_id: uuid.UUID, after: int, limit: int = 100
) -> tuple[list[RunEvent], bool]:
    """Return the run's events after the id `after`, and whether the run had finished.

    The status is read first: a finished run's last event was written with its status, so
    these events then include it.
    """
    status = await session.scalar(select(Run.status).where(Run.id == run_id))
    events = await session.scalars(
        select(RunEvent)
        .where(RunEvent.run_id == run_id, RunEvent.id > after)
        .order_by(RunEvent.id)
        .limit(limit)
    )
    return list(events), status in FINISHED

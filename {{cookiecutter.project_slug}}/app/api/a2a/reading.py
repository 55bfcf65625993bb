"""Reading a task: its run as one consistent snapshot, and its answer."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.a2a.tasks import Snapshot
from app.runs import service as runs
from app.runs.models import Run, RunEvent


async def snapshot(
    session: AsyncSession, owner: str, run_id: uuid.UUID, *, lock: bool = False
) -> Snapshot | None:
    """The owner's run with the id of its last event, read in one statement (so the state and
    the events a stream resumes after agree); None for another owner's, as for no run."""
    last = (
        select(func.coalesce(func.max(RunEvent.id), 0))
        .where(RunEvent.run_id == Run.id)
        .scalar_subquery()
    )
    query = (
        select(Run, last)
        .where(Run.id == run_id, Run.owner == owner)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(query.with_for_update(of=Run) if lock else query)).first()
    if row is None:
        return None
    run, last_event = row
    return Snapshot(run, await answer(session, run), last_event)


async def answer(session: AsyncSession, run: Run) -> str | None:
    """A succeeded run's answer: its last step, which asked for no tool."""
    return await answer_of(session, run.id) if run.status == "succeeded" else None


async def answer_of(session: AsyncSession, run_id: uuid.UUID) -> str | None:
    """The run's last step, if it asked for no tool."""
    _, last = await runs.progress(session=session, run_id=run_id)
    return last.content if last is not None else None

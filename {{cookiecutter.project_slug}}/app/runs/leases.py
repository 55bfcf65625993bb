"""A run's claim and lease: a worker claims a queued run for a while (its lease), renews the
lease with every write (runs/recorder.py), and the sweep takes back the runs whose lease ran
out, and re-sends queued runs whose queue message was lost."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Interval, bindparam, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.config.sections import AppConfig
from app.runs.models import Run, RunEvent
from app.runs.service import add_event, steps_of
from app.spend.models import Hold

# The claim, built once: queued -> running, attempts + 1, a lease; its "running" event,
# inserted from the UPDATE's result (nothing when the run was not queued); and how many model
# steps earlier attempts stored (most runs: none, and nothing more to read of them).
_CLAIMED = (
    update(Run)
    .where(Run.id == bindparam("run_id"), Run.status == "queued")
    .values(
        status="running",
        attempts=Run.attempts + 1,
        lease_until=func.clock_timestamp() + bindparam("lease", type_=Interval),
    )
    .returning(*Run.__table__.c)
    .cte("claimed")
)
_TOLD = (
    insert(RunEvent)
    .from_select(
        ["run_id", "name", "data", "created_at"],
        select(
            _CLAIMED.c.id,
            literal("running"),
            func.jsonb_build_object("attempt", _CLAIMED.c.attempts),
            func.clock_timestamp(),
        ),
    )
    .cte("told")
)
_CLAIM = select(aliased(Run, _CLAIMED), steps_of(_CLAIMED.c.id)).add_cte(_TOLD)


@dataclass(frozen=True, slots=True)
class Claim:
    run: Run
    # The model steps the run's earlier attempts stored.
    steps_taken: int


async def claim(session: AsyncSession, run_id: uuid.UUID, lease: timedelta) -> Claim | None:
    """The run, running on a new attempt's lease; None if not queued (another's, or ended)."""
    row = (await session.execute(_CLAIM, {"run_id": run_id, "lease": lease})).first()
    return None if row is None else Claim(*row)


async def expire(session: AsyncSession, config: AppConfig, lease: timedelta) -> list[uuid.UUID]:
    """Retry (or fail, after worker.max_attempts) the runs whose lease ran out, and find the
    queued runs nobody took for a lease's time; return the ids to send to the queue again."""
    expired = await session.scalars(
        select(Run)
        .where(Run.status == "running", Run.lease_until < func.clock_timestamp())
        .with_for_update(skip_locked=True)
        .limit(100)
    )
    requeue, dead = [], []
    for run in expired:
        dead.append(run.id)
        if run.attempts >= config.worker.max_attempts:
            run.status, run.finished_at = "failed", func.clock_timestamp()
            run.error = f"its worker stopped responding ({run.attempts} attempts)"
            add_event(session, run, "error", {"detail": run.error})
        else:
            run.status, run.lease_until = "queued", None
            run.queued_at = func.clock_timestamp()
            add_event(session, run, "retrying", {"attempts": run.attempts})
            requeue.append(run.id)
    # A queued run whose message was lost (popped by a worker that then died).
    lost = await session.scalars(
        update(Run)
        .where(Run.status == "queued", Run.queued_at < func.clock_timestamp() - lease)
        .values(queued_at=func.clock_timestamp())
        .returning(Run.id)
    )
    requeue += list(lost)
    if config.spend.budgeted:
        # The holds of attempts that died, and any hold past its time.
        stale = or_(Hold.holder.in_(dead), Hold.expires_at < func.clock_timestamp())
        await session.execute(delete(Hold).where(stale))
    return requeue

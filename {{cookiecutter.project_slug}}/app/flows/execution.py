"""How a worker executes runs: it claims each, keeps its lease while the turn works, ends it
or hands it back to the queue, and sweeps; what each of those writes is in app/runs/.

A claim is one UPDATE (queued -> running, attempts + 1, a lease). Every write of a step
renews the lease in its transaction, only while the claim is still this worker's: a worker
that lost its run (killed, or too slow to renew) never writes a step the next attempt also
writes. The next attempt rebuilds the conversation from the database and continues after the
last stored step; if that step was the run's answer, the run ends with it."""

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq_redis import ListQueueBroker

from app.agent.loop import DoneEvent
from app.config.settings import Settings
from app.conversations.models import Message
from app.core.queue import enqueue
from app.llm.base import Usage
from app.runs import leases, service
from app.runs.models import Run
from app.runs.recorder import LeaseLostError, RunRecorder
from app.turns import ReadyTurn, TurnBuilder

logger = logging.getLogger(__name__)


@dataclass
class Executor:
    turns: TurnBuilder
    broker: ListQueueBroker
    # Sessions for the runs' writes that are one statement each (autocommit sessions, in a
    # worker); by default the turns' own.
    alone: async_sessionmaker[AsyncSession] | None = None
    # Set on SIGTERM: runs stop after their current step and go back to the queue.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set while no run is in progress: a stopping worker waits for it.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def settings(self) -> Settings:
        return self.turns.settings

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.config.worker.visibility_timeout_seconds)

    async def execute(self, run_id: uuid.UUID) -> None:
        """Run one queued run to its end (or to a stop); a run not queued is left alone."""
        if self.stopping.is_set():
            # Taken from the queue while stopping: hand it straight back.
            await enqueue(self.broker, run_id, self.turns.metrics)
            return
        self.in_flight += 1
        self.idle.clear()
        try:
            async with (self.alone or self.turns.sessionmaker)() as session:
                # The claim, then the reading of where the run resumes (what earlier
                # attempts stored, which the claim does not change).
                claimed = await leases.claim(session, run_id, self.lease)
                if claimed is None:
                    return
                run = claimed.run
                resumed = await self._resumed(session, run, claimed.steps_taken)
                await session.commit()
            logger.info("run claimed", extra={"run_id": str(run.id), "attempt": run.attempts})
            await self._carry_out(run, *resumed)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    async def _claim(self, run_id: uuid.UUID) -> Run | None:
        """Claim a run in a transaction of its own (tests: a worker that claims, then dies)."""
        async with self.turns.sessionmaker() as session:
            claimed = await leases.claim(session, run_id, self.lease)
            await session.commit()
        return None if claimed is None else claimed.run

    async def _execute(self, run: Run) -> None:
        """Carry out a run claimed apart (_claim)."""
        async with self.turns.sessionmaker() as session:
            resumed = await self._resumed(session, run)
        await self._carry_out(run, *resumed)

    async def _resumed(
        self, session: AsyncSession, run: Run, steps_taken: int | None = None
    ) -> tuple[RunRecorder, DoneEvent[Message] | ReadyTurn[Message]]:
        """The claimed run's recorder, and its turn resumed after the last step its earlier
        attempts stored (steps_taken, if the claim counted them); or, if that step was its
        answer, the end it comes to."""
        # The run's id names its holds: a later attempt drops those of one that died.
        account = self.turns.spending.account(run.owner, run.id)
        recorder = RunRecorder(
            self.turns.sessionmaker,
            run.id,
            run.attempts,
            self.lease,
            self.stopping,
            account,
            usage=run.usage,
            claimed_now=not run.cancel_requested,
            alone=self.alone,
        )
        steps, answer = steps_taken or 0, None
        if steps_taken != 0:
            steps, answer = await service.progress(session=session, run_id=run.id)
        if answer is not None:
            # An earlier attempt stored the answer and died before it ended the run:
            # the run ends with that answer, and the model is not asked again.
            return recorder, DoneEvent([answer], "completed", Usage())
        turn = await self.turns.prepare(
            session,
            run.owner,
            run.conversation_id,
            recorder,
            steps_taken=steps,
            client_tools=run.client_specs,
            output=run.output,
            instructions=run.instructions,
        )
        return recorder, turn

    async def _carry_out(
        self,
        run: Run,
        recorder: RunRecorder,
        resumed: DoneEvent[Message] | ReadyTurn[Message],
    ) -> None:
        try:
            work = asyncio.create_task(self._finish(recorder, resumed))
            keeper = asyncio.create_task(self._keep_lease(recorder, work))
            try:
                await work
            finally:
                keeper.cancel()
        except (LeaseLostError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not recorder.lost:
                raise
            logger.warning("run %s was taken over by another worker", run.id)
            return
        if recorder.requeue:
            await enqueue(self.broker, run.id, self.turns.metrics)

    @staticmethod
    async def _finish(
        recorder: RunRecorder, resumed: DoneEvent[Message] | ReadyTurn[Message]
    ) -> None:
        ended = resumed if isinstance(resumed, DoneEvent) else await resumed.outcome()
        if isinstance(ended, DoneEvent):
            await recorder.finish(ended)
        else:
            await recorder.fail(ended.detail, refused=ended.refusal is not None)

    async def _keep_lease(self, recorder: RunRecorder, work: "asyncio.Task[None]") -> None:
        """Renew the lease during a long step; stop the work if another worker took the run."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await recorder.renew()
            except LeaseLostError:
                recorder.lost = True
                work.cancel()
                return

    async def sweep(self) -> int:
        """Retry (or fail) runs whose lease ran out; re-queue runs nobody took. Return how many."""
        async with self.turns.sessionmaker() as session:
            requeue = await leases.expire(session, self.settings.config, self.lease)
            await session.commit()
        for run_id in requeue:
            await enqueue(self.broker, run_id, self.turns.metrics)
        return len(requeue)

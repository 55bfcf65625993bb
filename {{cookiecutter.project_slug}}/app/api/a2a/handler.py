"""A2A's request handler on runs: a message starts a run (or answers the approvals a task
waits on), a task is read, followed or cancelled as its run. The runs table is the one store
of tasks: the SDK's task stores and event queues are not used."""

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.a2a import reading, replies, tasks
from app.api.a2a.tasks import Snapshot
from app.api.errors import over_budget
from app.config.sections import WorkerConfig
from app.conversations import service as conversations
from app.conversations.models import Conversation
from app.conversations.schemas import MessageCreate
from app.core.db import insert_new
from app.resources import Resources
from app.runs import service as runs
from app.runs.models import FINISHED
from app.turns import TurnBuilder

TITLE_CHARS = 80


@dataclass
class RunTasks(RequestHandler):
    """The handler of one request, for the caller's key (owner)."""

    owner: str
    resources: Resources
    turns: TurnBuilder
    worker: WorkerConfig

    @property
    def _sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.resources.sessionmaker

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        """Start a run (or answer a waiting one); unless told to return at once, wait until
        it has ended or waits on approval (or events_stream_seconds have passed)."""
        run_id = (await self._send(params.message)).run.id
        deadline = time.monotonic() + self.worker.events_stream_seconds
        while True:
            async with self._sessionmaker() as session:
                found = await reading.snapshot(session, self.owner, run_id)
            assert found is not None
            immediate = params.configuration.return_immediately
            if immediate or found.run.status in tasks.ENDS or time.monotonic() >= deadline:
                return found.task
            await asyncio.sleep(self.worker.events_poll_seconds)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """Start a run (or answer a waiting one), and follow it."""
        async for event in self._follow(await self._send(params.message)):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """The task as it is now, then its events after that, until it ends or waits; a task
        that has ended has nothing more to stream (A2A: UnsupportedOperationError)."""
        async with self._sessionmaker() as session:
            found = await self._owned(session, params.id)
        if found.run.status in FINISHED:
            state = TaskState.Name(tasks.STATES[found.run.status])
            raise UnsupportedOperationError(
                f"task {params.id} has ended ({state}): read it with GetTask"
            )
        async for event in self._follow(found):
            yield event

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        async with self._sessionmaker() as session:
            return (await self._owned(session, params.id)).task

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        """Cancel a task: a submitted or waiting one at once, a working one before its next
        model call (it stays working until then)."""
        async with self._sessionmaker() as session:
            found = await self._owned(session, params.id, lock=True)
            if found.run.status in FINISHED:
                raise TaskNotCancelableError(f"task {params.id} has already ended")
            await runs.cancel_run(session=session, run=found.run)
            cancelled = await reading.snapshot(session, self.owner, found.run.id)
            assert cancelled is not None
            return cancelled.task

    async def _send(self, message: Message) -> Snapshot:
        """The run a message starts, or the waiting run it answers, as the message left it:
        a stream starts from there, whatever a worker has done since (it may have taken the
        run already), so it sends every event of the run after that."""
        if message.task_id:
            return await self._answer(message)
        text = replies.text_of(message)
        try:
            data = MessageCreate(content=text)
        except ValidationError as exc:
            raise InvalidParamsError(f"message: {exc.errors()[0]['msg']}") from None
        # A key whose budget is used up is refused before anything is stored, as on REST.
        if refusal := await self.turns.spending.account(self.owner).check():
            raise over_budget(refusal)
        async with self._sessionmaker() as session:
            conversation = await self._conversation(session, message.context_id, text)
            run = await runs.start_run(
                session=session,
                conversation=conversation,
                data=data,
                queue=self.resources.queue,
                metrics=self.resources.metrics,
            )
            # A new run: no event yet.
            return Snapshot(run, None, 0)

    async def _answer(self, message: Message) -> Snapshot:
        """Decide on the calls a waiting task asks about; its run is queued again."""
        async with self._sessionmaker() as session:
            waiting = await self._owned(session, message.task_id, lock=True)
            run = waiting.run
            if run.status != "awaiting_approval":
                raise InvalidParamsError(
                    f"task {message.task_id} is {tasks.STATES[run.status]} and waits on no "
                    "input: send a new message with its contextId to go on with the conversation"
                )
            decided = replies.decisions(message, run.pending_approvals)
            await runs.decide(
                session=session,
                run=run,
                decisions=decided,
                queue=self.resources.queue,
                metrics=self.resources.metrics,
            )
            # Its events from the decisions on (read before them, under the run's lock).
            return Snapshot(run, None, waiting.last_event)

    async def _conversation(
        self, session: AsyncSession, context_id: str, text: str
    ) -> Conversation:
        if not context_id:
            # Written with the run and its message, in start_run's one transaction.
            new = Conversation(owner=self.owner, title=text[:TITLE_CHARS])
            return await insert_new(session, new)
        known = tasks.uuid_of(context_id)
        found = None
        if known is not None:
            found = await conversations.get_conversation(
                session=session, owner=self.owner, conversation_id=known
            )
        if found is None:
            raise InvalidParamsError(
                f"contextId {context_id} is no context of this key: leave it out to start one"
            )
        return found

    async def _owned(self, session: AsyncSession, task_id: str, *, lock: bool = False) -> Snapshot:
        """The caller's task, or TaskNotFoundError: another key's is answered as unknown."""
        run_id = tasks.uuid_of(task_id)
        found = None
        if run_id is not None:
            found = await reading.snapshot(session, self.owner, run_id, lock=lock)
        if found is None:
            raise TaskNotFoundError(f"task {task_id} not found")
        return found

    async def _follow(self, first: Snapshot) -> AsyncGenerator[Event]:
        """The snapshot's task, then the A2A events of the run's events after it."""
        yield first.task
        if first.run.status in tasks.ENDS:
            return
        events = runs.follow(
            sessionmaker=self._sessionmaker,
            run_id=first.run.id,
            after=first.last_event,
            seconds=self.worker.events_stream_seconds,
            poll_seconds=self.worker.events_poll_seconds,
        )
        async for event in events:
            answer = None
            if event.name == "done" and event.data["status"] == "succeeded":
                async with self._sessionmaker() as session:
                    answer = await reading.answer_of(session, first.run.id)
            for update in tasks.updates(first.run, event, answer):
                yield update
                if tasks.ends(update):
                    return

    # What this agent does not offer: listing tasks, push notifications, an extended card.
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        raise UnsupportedOperationError("ListTasks is not offered: read each task by its id")

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError

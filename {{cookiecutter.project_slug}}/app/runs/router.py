"""Background run endpoints: start a run, read it, follow its events, approve its tool
calls, cancel it."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.conversations import service as conversations
from app.conversations.router import existing, unknown_files
from app.conversations.schemas import MessageCreate
from app.core.queue import enqueue
from app.core.streams import LINE_END, HeldStream
from app.core.validation import field_error
from app.deps import OwnerDep, ResourcesDep, SessionDep, SessionmakerDep, SettingsDep
from app.runs import service
from app.runs.models import Run
from app.runs.schemas import Approvals, RunOut

router = APIRouter(tags=["runs"])


@router.post("/conversations/{conversation_id}/runs", status_code=status.HTTP_202_ACCEPTED)
async def start_run(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    session: SessionDep,
    owner: OwnerDep,
    resources: ResourcesDep,
) -> RunOut:
    """Store the message and queue a run of the agent on it; a worker executes it."""
    conversation = await existing(session, owner, conversation_id)
    try:
        run = await service.create_run(session=session, conversation=conversation, data=body)
    except conversations.UnknownFilesError as exc:
        raise RequestValidationError(unknown_files(body, exc)) from None
    # Without Redis the run is still stored as queued: the workers' sweep sends it again.
    await enqueue(resources.queue, run.id, resources.metrics)
    return RunOut.model_validate(run)


@router.get("/runs/{run_id}")
async def get_run(run_id: uuid.UUID, session: SessionDep, owner: OwnerDep) -> RunOut:
    """A run's status, stop reason or error, attempts and token usage."""
    return RunOut.model_validate(await _existing(session, owner, run_id))


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: uuid.UUID, session: SessionDep, owner: OwnerDep) -> RunOut:
    """Cancel a run: a queued or waiting one at once, a running one before its next model
    call."""
    run = await _existing(session, owner, run_id, lock=True)
    return RunOut.model_validate(await service.cancel_run(session=session, run=run))


@router.post(
    "/runs/{run_id}/approvals",
    responses={status.HTTP_409_CONFLICT: {"description": "The run is not awaiting approval"}},
)
async def decide_approvals(
    run_id: uuid.UUID,
    body: Approvals,
    session: SessionDep,
    owner: OwnerDep,
    resources: ResourcesDep,
) -> RunOut:
    """Approve or deny tool calls the run waits on; once each has a decision, the run is
    queued again (a denied call's result tells the model the user denied it)."""
    run = await _existing(session, owner, run_id, lock=True)
    try:
        ready = await service.decide(session=session, run=run, decisions=body.decisions)
    except service.NotAwaitingError:
        detail = f"run {run_id} is {run.status}, not awaiting approval"
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    except service.UndecidableError as exc:
        raise RequestValidationError(_undecidable(exc)) from None
    if ready:
        await enqueue(resources.queue, run.id, resources.metrics)
    return RunOut.model_validate(run)


def _undecidable(exc: service.UndecidableError) -> list[dict[str, Any]]:
    """The same 422 shape as any other invalid field."""
    return [
        field_error("not_pending", ("decisions", index, "tool_call_id"), why)
        for index, why in exc.problems
    ]


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={status.HTTP_200_OK: {"content": {"text/event-stream": {}}}},
)
async def run_events(
    run_id: uuid.UUID,
    session: SessionDep,
    owner: OwnerDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    resources: ResourcesDep,
    last_event_id: Annotated[int, Header(ge=0)] = 0,
) -> EventSourceResponse:
    """The run's events as SSE (running, tool_call, tool_result, approval_required, approvals,
    retrying, requeued, then done or error), each with an id: reconnect with Last-Event-ID to
    get only what came after."""
    run = await _existing(session, owner, run_id)
    await session.close()
    give_back = resources.event_streams.take(owner)
    config = settings.config.worker

    async def events() -> AsyncIterator[ServerSentEvent]:
        after, deadline = last_event_id, time.monotonic() + config.events_stream_seconds
        while time.monotonic() < deadline:
            async with sessionmaker() as reader:
                found, finished = await service.events_after(
                    session=reader, run_id=run.id, after=after
                )
            for event in found:
                after = event.id
                yield ServerSentEvent(
                    data=json.dumps(event.data), event=event.name, id=str(event.id), sep=LINE_END
                )
            if finished and not found:
                return
            if not found:
                await asyncio.sleep(config.events_poll_seconds)

    return HeldStream(events(), give_back)


async def _existing(
    session: SessionDep, owner: str, run_id: uuid.UUID, *, lock: bool = False
) -> Run:
    run = await service.get_run(session=session, owner=owner, run_id=run_id, lock=lock)
    # Unknown and foreign ids take the same query and get the same answer.
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return run

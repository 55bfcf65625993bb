"""Background run endpoints: start a run, read it, follow its events, approve its tool
calls, cancel it."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse

from app.api import sse
from app.api.errors import field_error, over_budget
from app.conversations.schemas import MessageCreate
from app.deps import (
    LockedRun,
    OwnedConversation,
    OwnedRun,
    OwnerDep,
    ResourcesDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    TurnsDep,
)
from app.runs import service
from app.runs.schemas import Approvals, RunOut

router = APIRouter(tags=["runs"])


@router.post(
    "/conversations/{conversation_id}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    responses={status.HTTP_429_TOO_MANY_REQUESTS: {"description": "The key's budget is used up"}},
)
async def start_run(
    conversation: OwnedConversation,
    body: MessageCreate,
    session: SessionDep,
    resources: ResourcesDep,
    turns: TurnsDep,
) -> RunOut:
    """Store the message and queue a run of the agent on it; a worker executes it."""
    # A key whose budget is used up is refused before anything is stored or queued.
    if refusal := await turns.spending.account(conversation.owner).check():
        raise over_budget(refusal)
    run = await service.start_run(
        session=session,
        conversation=conversation,
        data=body,
        queue=resources.queue,
        metrics=resources.metrics,
    )
    return RunOut.model_validate(run)


@router.get("/runs/{run_id}")
async def get_run(run: OwnedRun) -> RunOut:
    """A run's status, stop reason or error, attempts and token usage."""
    return RunOut.model_validate(run)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run: LockedRun, session: SessionDep) -> RunOut:
    """Cancel a run: a queued or waiting one at once, a running one before its next model
    call."""
    return RunOut.model_validate(await service.cancel_run(session=session, run=run))


@router.post(
    "/runs/{run_id}/approvals",
    responses={status.HTTP_409_CONFLICT: {"description": "The run is not awaiting approval"}},
)
async def decide_approvals(
    run: LockedRun, body: Approvals, session: SessionDep, resources: ResourcesDep
) -> RunOut:
    """Approve or deny tool calls the run waits on; once each has a decision, the run is
    queued again (a denied call's result tells the model the user denied it)."""
    try:
        await service.decide(
            session=session,
            run=run,
            decisions=body.decisions,
            queue=resources.queue,
            metrics=resources.metrics,
        )
    except service.NotAwaitingError:
        detail = f"run {run.id} is {run.status}, not awaiting approval"
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    except service.UndecidableError as exc:
        # The same 422 shape as any other invalid field.
        errors = [
            field_error("not_pending", ("decisions", index, "tool_call_id"), why)
            for index, why in exc.problems
        ]
        raise RequestValidationError(errors) from None
    return RunOut.model_validate(run)


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses=sse.documented("The run's events as Server-Sent Events", budgeted=False),
)
async def run_events(
    run: OwnedRun,
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
    # The stream polls with sessions of its own: the request's goes back to the pool now.
    await session.close()
    config = settings.config.worker
    with resources.event_streams.holding(owner) as give_back:
        events = service.follow(
            sessionmaker=sessionmaker,
            run_id=run.id,
            after=last_event_id,
            seconds=config.events_stream_seconds,
            poll_seconds=config.events_poll_seconds,
        )
        frames = (sse.encode(e.name, e.data, event_id=e.id) async for e in events)
        return sse.HeldStream(frames, give_back)

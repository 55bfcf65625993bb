"""The Responses API (OpenAI's, as the Open Responses specification has it): every response is
a run of the agent, executed by a worker, stored, and read back from what the run stored.

background false: the request waits for the run (its events streamed with "stream": true);
background true: it answers at once, queued; read it later, follow its events from any
sequence number, cancel it. previous_response_id continues the conversation of a response."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse
from starlette.responses import JSONResponse

from app.agent.loop import ErrorEvent
from app.api import sse
from app.api.errors import field_error, refuse_taken_tool_names
from app.api.openai import errors, wire
from app.api.responses import events, reading, starting
from app.api.responses.items import Input
from app.api.responses.objects import ResponseObject
from app.api.responses.schemas import CreateResponse, JsonObjectFormat, JsonSchemaFormat
from app.core.queue import enqueue
from app.core.streams import no_slot
from app.deps import OwnerDep, ResourcesDep, SessionDep, SessionmakerDep, SettingsDep, TurnsDep
from app.llm.base import OutputFormat, ToolSpec
from app.runs import service as runs
from app.runs.models import Run

router = APIRouter(tags=["responses"])
ResponseId = Annotated[str, Path(max_length=200)]


@router.post(
    "/responses",
    response_model=ResponseObject,
    responses=errors.documented(
        401,
        404,
        409,
        422,
        429,
        503,
        stream=sse.documented('With "stream": true, the response\'s events, then [DONE]'),
    ),
)
async def create_response(
    body: CreateResponse,
    owner: OwnerDep,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    turns: TurnsDep,
    resources: ResourcesDep,
) -> ResponseObject | JSONResponse | EventSourceResponse:
    """Start a response: a run of the agent over the input (and the conversation of
    previous_response_id). Background: answered at once, queued; else when the run has ended
    (or, streamed, as it goes). A call of one of the client's `tools` ends it with a
    function_call item; a call waiting for approval, with an mcp_approval_request item."""
    config = settings.config.openai_api
    if body.model != config.model_name:
        return wire.model_not_found(body.model, config.model_name)
    if len(body.input) > config.max_messages:
        detail = f"List should have at most {config.max_messages} items after validation"
        raise RequestValidationError([field_error("too_long", ("input",), detail)])
    taken = Input.of(body)
    client_tools = _client_tools(body)
    if refusal := await turns.spending.account(owner).check():
        return wire.failed(ErrorEvent(refusal.detail, refusal))
    previous = None
    if body.previous_response_id is not None:
        previous = await _owned(session, owner, body.previous_response_id, lock=True)
    worker = settings.config.worker
    waits = body.stream or not body.background
    # The slot is taken before anything is stored: a refused request changes nothing.
    with resources.event_streams.holding(owner) if waits else no_slot() as give_back:
        run = await starting.start(
            session=session,
            owner=owner,
            taken=taken,
            previous=previous,
            client_tools=client_tools,
            output=_output(body),
            background=body.background,
        )
        # Without Redis the run is still stored as queued: the workers' sweep sends it.
        await enqueue(resources.queue, run.id, resources.metrics)
        # The request's connection goes back to the pool: the waiting polls with its own.
        await session.close()
        if body.stream:
            stream = reading.follow(
                sessionmaker,
                run.id,
                config.model_name,
                after=-1,
                seconds=worker.events_stream_seconds,
                poll_seconds=worker.events_poll_seconds,
            )
            return sse.HeldStream(stream, give_back)
        try:
            if body.background:
                return events.Replay.of(events.Stored(run, []), config.model_name).response()
            replay = await reading.settled(
                sessionmaker,
                run.id,
                config.model_name,
                seconds=worker.events_stream_seconds,
                poll_seconds=worker.events_poll_seconds,
            )
            return replay.response()
        finally:
            give_back()


@router.get(
    "/responses/{response_id}",
    response_model=ResponseObject,
    responses=errors.documented(
        401,
        404,
        429,
        503,
        stream=sse.documented("With stream=true, the response's events", budgeted=False),
    ),
)
async def get_response(
    response_id: ResponseId,
    owner: OwnerDep,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    resources: ResourcesDep,
    stream: bool = False,
    starting_after: Annotated[int, Query(ge=-1)] = -1,
) -> ResponseObject | EventSourceResponse:
    """A response as it is now; with stream=true its events after sequence number
    `starting_after` (all of them by default), as they come, until it has ended."""
    run = await _owned(session, owner, response_id)
    model = settings.config.openai_api.model_name
    if not stream:
        return events.Replay.of(await reading.stored(session, run), model).response()
    await session.close()
    worker = settings.config.worker
    with resources.event_streams.holding(owner) as give_back:
        follow = reading.follow(
            sessionmaker,
            run.id,
            model,
            after=starting_after,
            seconds=worker.events_stream_seconds,
            poll_seconds=worker.events_poll_seconds,
        )
        return sse.HeldStream(follow, give_back)


@router.post("/responses/{response_id}/cancel", responses=errors.documented(401, 404, 429, 503))
async def cancel_response(
    response_id: ResponseId, owner: OwnerDep, session: SessionDep, settings: SettingsDep
) -> ResponseObject:
    """Cancel a response: a queued one at once, one in progress before its next model call."""
    run = await runs.cancel_run(
        session=session, run=await _owned(session, owner, response_id, lock=True)
    )
    model = settings.config.openai_api.model_name
    return events.Replay.of(await reading.stored(session, run), model).response()


async def _owned(session: SessionDep, owner: str, response_id: str, *, lock: bool = False) -> Run:
    """The caller's run a response id names, or 404: an unknown id, a malformed one and
    another key's are answered alike."""
    run_id = events.run_id_of(response_id)
    run = None
    if run_id is not None:
        run = await runs.get_run(session=session, owner=owner, run_id=run_id, lock=lock)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No response found with id '{response_id}'")
    return run


def _client_tools(body: CreateResponse) -> list[ToolSpec]:
    """The client's functions as the model is offered them (none named as the agent's own)."""
    refuse_taken_tool_names([t.name for t in body.tools], lambda index: ("tools", index, "name"))
    return [
        ToolSpec(t.name, t.description or "", t.parameters or {"type": "object"})
        for t in body.tools
    ]


def _output(body: CreateResponse) -> OutputFormat | None:
    match body.text.format:
        case JsonSchemaFormat(name=name, json_schema=schema, strict=strict):
            return OutputFormat(name, schema, bool(strict))
        case JsonObjectFormat():
            return OutputFormat("json_object", {"type": "object"}, strict=False)
    return None

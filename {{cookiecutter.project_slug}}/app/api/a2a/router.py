"""The A2A JSON-RPC endpoint: a2a-sdk's dispatcher (1.0's methods, and 0.3's names, which
older clients send) over a handler of the caller's tasks. Streams and waiting sends hold one
of the key's event-stream slots, taken before anything is stored, as on REST."""

import json
from typing import Any

from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse
from starlette.responses import Response

from app.api import sse
from app.api.a2a.card import RPC_PATH
from app.api.a2a.handler import RunTasks
from app.core.streams import no_slot
from app.deps import OwnerDep, ResourcesDep, SettingsDep, TurnsDep

# The methods whose answer waits on the run (a stream, or a send that waits for the end).
WAITING = frozenset(
    {
        "SendMessage",
        "SendStreamingMessage",
        "SubscribeToTask",
        "message/send",
        "message/stream",
        "tasks/resubscribe",
    }
)
router = APIRouter(tags=["a2a"])


@router.post(RPC_PATH.removeprefix("/v1"), response_class=Response)
async def a2a(
    request: Request,
    owner: OwnerDep,
    resources: ResourcesDep,
    settings: SettingsDep,
    turns: TurnsDep,
) -> Response:
    """A2A JSON-RPC 2.0: SendMessage, SendStreamingMessage, GetTask, CancelTask,
    SubscribeToTask; a task is a run of the agent."""
    handler = RunTasks(owner, resources, turns, settings.config.worker)
    dispatcher = JsonRpcDispatcher(handler, enable_v0_3_compat=True)
    waits = await _method(request) in WAITING
    with resources.event_streams.holding(owner) if waits else no_slot() as give_back:
        response = await dispatcher.handle_requests(request)
        if isinstance(response, EventSourceResponse):
            return sse.HeldStream(response.body_iterator, give_back)
        give_back()
        return response


async def _method(request: Request) -> Any:
    """The request's method, if its body is a JSON object (the dispatcher reads the body
    again, from the request's cache, and answers anything else)."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body.get("method") if isinstance(body, dict) else None

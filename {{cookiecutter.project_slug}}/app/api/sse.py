"""Server-Sent Events: a message's turn and a run's stored events (each with its id, for
Last-Event-ID) encoded alike, a JSON body each; every stream, AG-UI's and the chat completion
chunks too, answered by `HeldStream`, which gives the stream's slot back."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import status
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from app.agent.loop import (
    DoneEvent,
    ErrorEvent,
    Event,
    Refusal,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.conversations.models import Message
from app.conversations.schemas import Exchange, tool_call_data, tool_result_data

logger = logging.getLogger(__name__)
EVENT_STREAM = "text/event-stream"
# A comment line this often keeps proxies from closing a stream that waits on a slow tool.
KEEP_ALIVE_SECONDS = 15
# Plain newlines, not sse-starlette's CRLF default: the SSE format allows both, and a
# hand-written client that splits events on "\n\n" reads only these.
LINE_END = "\n"


def documented(stream: str, *, budgeted: bool = True) -> dict[int | str, dict[str, Any]]:
    """A streaming route's OpenAPI `responses`: the stream, the two refusals of a slot (past
    the key's share, past the process's), and for a turn (budgeted) the key's spent budget."""
    per_key = "Too many streams of this key open"
    return {
        status.HTTP_200_OK: {"description": stream, "content": {EVENT_STREAM: {}}},
        status.HTTP_429_TOO_MANY_REQUESTS: {
            "description": f"{per_key}, or its budget used up" if budgeted else per_key
        },
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Too many streams open"},
    }


async def turn(
    events: AsyncIterator[Event[Message]], user_message: Message
) -> AsyncIterator[ServerSentEvent]:
    """A message's turn as it happens: token, tool_call, tool_result, then done or error."""
    try:
        async for event in events:
            match event:
                case TokenEvent(content=content):
                    yield encode("token", {"content": content})
                case ToolCallEvent(call=call):
                    yield encode("tool_call", tool_call_data(call))
                case ToolResultEvent(call=call, result=result):
                    yield encode("tool_result", tool_result_data(call, result))
                case DoneEvent():
                    yield encode("done", Exchange.of(user_message, event).model_dump(mode="json"))
                case ErrorEvent(refusal=Refusal() as refusal):
                    # When to try again, as a 429's Retry-After.
                    data = {"detail": refusal.detail, "code": "budget_exceeded"}
                    yield encode("error", {**data, "retry_after": refusal.retry_after})
                case ErrorEvent(detail=detail):
                    yield encode("error", {"detail": detail})
    except asyncio.CancelledError:
        # sse-starlette cancels the stream when the client goes away: the model call or tool
        # in progress stops with it, and nothing more of the turn is stored.
        logger.info("stream stopped: the client disconnected or the server is stopping")
        raise


def encode(name: str, data: dict[str, Any], *, event_id: int | None = None) -> ServerSentEvent:
    event_id_text = None if event_id is None else str(event_id)
    return ServerSentEvent(data=json.dumps(data), event=name, id=event_id_text, sep=LINE_END)


class HeldStream(EventSourceResponse):
    """The stream as the response, its slot given back however it ends (the generator's own
    `finally` would not run for a client gone before the first event). A client that goes
    away cancels the stream, and with it the model call or the polling that feeds it."""

    def __init__(self, content: Any, give_back: Callable[[], None]) -> None:
        # KEEP_ALIVE_SECONDS read here, not bound at import: tests shorten it.
        super().__init__(content, ping=KEEP_ALIVE_SECONDS, sep=LINE_END)
        self._give_back = give_back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._give_back()

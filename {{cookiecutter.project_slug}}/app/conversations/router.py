"""Conversation endpoints."""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.agent.loop import (
    DoneEvent,
    ErrorEvent,
    Event,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    Turn,
)
from app.conversations import service
from app.conversations.models import Conversation, Message
from app.conversations.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    Exchange,
    MessageCreate,
    MessageOut,
    ToolCallOut,
    UsageOut,
)
from app.core.streams import EVENT_STREAM, LINE_END, HeldStream
from app.deps import AgentDep, OwnerDep, ResourcesDep, SessionDep
from app.flows.turns import Agent
from app.llm.base import ChatMessage

router = APIRouter(prefix="/conversations", tags=["conversations"])
logger = logging.getLogger(__name__)
# Far beyond any real page, and well inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000_000


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_conversation(
    body: ConversationCreate, session: SessionDep, owner: OwnerDep
) -> ConversationOut:
    """Start a conversation."""
    conversation = await service.create_conversation(session=session, owner=owner, data=body)
    return ConversationOut.model_validate(conversation)


@router.get("")
async def list_conversations(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ConversationPage:
    """List your conversations, newest first."""
    items, total = await service.list_conversations(
        session=session, owner=owner, limit=limit, offset=offset
    )
    return ConversationPage(
        items=[ConversationOut.model_validate(item) for item in items],
        total=min(total, service.COUNT_LIMIT),
        total_is_exact=total <= service.COUNT_LIMIT,
        limit=limit,
        offset=offset,
    )


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: uuid.UUID, session: SessionDep, owner: OwnerDep
) -> ConversationDetail:
    """Get a conversation with its messages."""
    conversation = await existing(session, owner, conversation_id, with_messages=True)
    return ConversationDetail.model_validate(conversation)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: uuid.UUID, session: SessionDep, owner: OwnerDep
) -> None:
    """Delete a conversation and its messages (its files stay; see DELETE /v1/files/{id})."""
    conversation = await existing(session, owner, conversation_id)
    await service.delete_conversation(session=session, conversation=conversation)


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=Exchange,
    responses={
        status.HTTP_200_OK: {
            "description": "With Accept: text/event-stream, the reply as Server-Sent Events",
            "content": {EVENT_STREAM: {}},
        },
        status.HTTP_502_BAD_GATEWAY: {"description": "The language model provider failed"},
        status.HTTP_429_TOO_MANY_REQUESTS: {"description": "Too many streams of this key open"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Too many streams open"},
    },
)
async def send_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    agent: AgentDep,
    resources: ResourcesDep,
) -> Exchange | EventSourceResponse:
    """Send a message; the agent answers, calling tools as it needs (SSE with
    Accept: text/event-stream: token, tool_call, tool_result, then done or error)."""
    conversation = await existing(session, owner, conversation_id)
    if EVENT_STREAM in request.headers.get("accept", ""):
        # The slot is taken before the message is stored: a refused stream changes nothing.
        with resources.turn_streams.holding(owner) as give_back:
            user_out, history, turn = await start_turn(session, agent, owner, conversation, body)
            # A client that goes away cancels the stream, and with it the model call.
            return HeldStream(_server_sent(turn.run(history, stream=True), user_out), give_back)
    user_out, history, turn = await start_turn(session, agent, owner, conversation, body)
    async for event in turn.run(history, stream=False):
        if isinstance(event, ErrorEvent):
            # The user's message (and any finished step) is committed: the client may retry.
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, event.detail)
        if isinstance(event, DoneEvent):
            return _exchange(user_out, event)
    raise AssertionError("a turn always ends with a done or an error event")


async def start_turn(
    session: SessionDep, agent: Agent, owner: str, conversation: Conversation, body: MessageCreate
) -> tuple[MessageOut, list[ChatMessage], Turn[Message]]:
    """Store the user's message; return it, the history the turn starts from, and the turn,
    whose steps go into the conversation."""
    try:
        user_message = await service.add_user_message(
            session=session, conversation=conversation, data=body
        )
    except service.UnknownFilesError as exc:
        raise RequestValidationError(unknown_files(body, exc)) from None
    history = await agent.history(session, conversation)
    recorder = service.ConversationRecorder(agent.sessionmaker, conversation.id)
    turn = agent.turn(owner=owner, conversation_id=conversation.id, recorder=recorder)
    user_out = MessageOut.model_validate(user_message)
    # Hand the connection back now rather than hold it through the model's calls; each
    # step is stored with a session of its own.
    await session.close()
    return user_out, history, turn


def _exchange(user_message: MessageOut, done: DoneEvent[Message]) -> Exchange:
    steps = [MessageOut.model_validate(step) for step in done.steps]
    return Exchange(
        user_message=user_message,
        assistant_message=next(s for s in reversed(steps) if s.role == "assistant"),
        steps=steps,
        stop_reason=done.stop_reason,
        usage=UsageOut.model_validate(done.usage),
    )


async def _server_sent(
    events: AsyncIterator[Event[Message]], user_message: MessageOut
) -> AsyncIterator[ServerSentEvent]:
    """The turn's events as Server-Sent Events, each with a JSON body."""
    try:
        async for event in events:
            match event:
                case TokenEvent(content=content):
                    yield _sse("token", {"content": content})
                case ToolCallEvent(call=call):
                    yield _sse("tool_call", ToolCallOut(**asdict(call)).model_dump())
                case ToolResultEvent(call=call, result=result):
                    yield _sse(
                        "tool_result",
                        {
                            "tool_call_id": call.id,
                            "name": call.name,
                            "content": result.content,
                            "is_error": result.is_error,
                        },
                    )
                case DoneEvent():
                    yield _sse("done", _exchange(user_message, event).model_dump(mode="json"))
                case ErrorEvent(detail=detail):
                    yield _sse("error", {"detail": detail})
    except asyncio.CancelledError:
        # sse-starlette cancels the stream when the client goes away: the model call or tool
        # in progress stops with it, and nothing more of the turn is stored.
        logger.info("stream stopped: the client disconnected or the server is stopping")
        raise


def _sse(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), event=name, sep=LINE_END)


def unknown_files(body: MessageCreate, exc: service.UnknownFilesError) -> list[dict[str, Any]]:
    """The same 422 shape as any other invalid field, so clients parse one format."""
    return [
        {
            "type": "unknown_file",
            "loc": ("body", "file_ids", body.file_ids.index(file_id)),
            "msg": f"file {file_id} not found",
            "input": str(file_id),
        }
        for file_id in exc.missing
    ]


async def existing(
    session: SessionDep, owner: str, conversation_id: uuid.UUID, *, with_messages: bool = False
) -> Conversation:
    conversation = await service.get_conversation(
        session=session, owner=owner, conversation_id=conversation_id, with_messages=with_messages
    )
    # Unknown and foreign ids take the same query and get the same answer.
    if conversation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"conversation {conversation_id} not found")
    return conversation

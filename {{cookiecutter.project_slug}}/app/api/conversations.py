"""Conversation endpoints: create, list, read and delete conversations; send a message."""

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse

from app.agent.loop import ErrorEvent
from app.api import sse
from app.api.errors import field_error, over_budget
from app.conversations import service
from app.conversations.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    Exchange,
    MessageCreate,
    MessageOut,
)
from app.deps import (
    OwnedConversation,
    OwnerDep,
    ResourcesDep,
    SessionDep,
    TurnsDep,
)
from app.flows import messages

router = APIRouter(prefix="/conversations", tags=["conversations"])
# Far beyond any real page, and well inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000_000
# The most messages one read of a conversation returns: a thread of months is read in pages.
MAX_MESSAGES = 1_000


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
    before: Annotated[
        uuid.UUID | None,
        Query(description="A conversation of yours: only those created before it"),
    ] = None,
) -> ConversationPage:
    """List your conversations, newest first. The next page: before set to the last item's
    id (an offset costs what it skips; before costs nothing), while has_more is true."""
    try:
        items, total, more = await service.list_conversations(
            session=session, owner=owner, limit=limit, offset=offset, before=before
        )
    except service.UnknownCursorError:
        raise _unknown("before", f"conversation {before} not found") from None
    return ConversationPage(
        items=[ConversationOut.model_validate(item) for item in items],
        total=min(total, service.COUNT_LIMIT),
        total_is_exact=total <= service.COUNT_LIMIT,
        limit=limit,
        offset=offset,
        has_more=more,
    )


@router.get("/{conversation_id}")
async def get_conversation(
    conversation: OwnedConversation,
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_MESSAGES, description="The most messages, the newest kept")
    ] = 100,
    before: Annotated[
        uuid.UUID | None,
        Query(description="A message of this conversation: only messages before it"),
    ] = None,
) -> ConversationDetail:
    """Get a conversation with its newest messages, oldest first. When has_earlier_messages
    is true, ask again with before set to the first message's id for the ones before."""
    try:
        found, earlier = await service.message_page(
            session=session, conversation_id=conversation.id, limit=limit, before=before
        )
    except service.UnknownCursorError:
        raise _unknown("before", f"message {before} is not in this conversation") from None
    return ConversationDetail(
        **ConversationOut.model_validate(conversation).model_dump(),
        messages=[MessageOut.model_validate(message) for message in found],
        has_earlier_messages=earlier,
    )


def _unknown(parameter: str, detail: str) -> RequestValidationError:
    """A 422 naming the query parameter whose id is not one of the rows paged."""
    return RequestValidationError([field_error("unknown_id", (parameter,), detail, part="query")])


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(conversation: OwnedConversation, session: SessionDep) -> None:
    """Delete a conversation and its messages (its files stay; see DELETE /v1/files/{id})."""
    await service.delete_conversation(session=session, conversation=conversation)


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=Exchange,
    responses={
        **sse.documented("With Accept: text/event-stream, the reply as Server-Sent Events"),
        status.HTTP_502_BAD_GATEWAY: {"description": "The language model provider failed"},
    },
)
async def send_message(
    conversation: OwnedConversation,
    body: MessageCreate,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    turns: TurnsDep,
    resources: ResourcesDep,
) -> Exchange | EventSourceResponse:
    """Send a message; the agent answers, calling tools as it needs (SSE with
    Accept: text/event-stream: token, tool_call, tool_result, then done or error)."""
    account = turns.spending.account(owner)
    # A key whose budget is used up is refused before anything is stored.
    if refusal := await account.check():
        raise over_budget(refusal)
    if sse.EVENT_STREAM in request.headers.get("accept", ""):
        # The slot is taken before the message is stored: a refused stream changes nothing.
        with resources.turn_streams.holding(owner) as give_back:
            message, turn = await messages.send(
                turns=turns, session=session, conversation=conversation, data=body, account=account
            )
            frames = sse.turn(turn.events(stream=True), message)
            return sse.HeldStream(frames, give_back)
    message, turn = await messages.send(
        turns=turns, session=session, conversation=conversation, data=body, account=account
    )
    ended = await turn.outcome()
    # The user's message (and any finished step) is committed: the client may retry.
    if isinstance(ended, ErrorEvent) and ended.refusal:
        raise over_budget(ended.refusal)
    if isinstance(ended, ErrorEvent):
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, ended.detail)
    return Exchange.of(message, ended)

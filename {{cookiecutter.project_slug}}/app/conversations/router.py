"""Conversation endpoints."""

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from app.conversations import service
from app.conversations.models import Conversation
from app.conversations.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    Exchange,
    MessageCreate,
    MessageOut,
)
from app.deps import LLMDep, OwnerDep, SessionDep, SessionmakerDep, SettingsDep
from app.llm.base import ChatMessage, LLMError, LLMProvider

router = APIRouter(prefix="/conversations", tags=["conversations"])
EVENT_STREAM = "text/event-stream"
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
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: uuid.UUID, session: SessionDep, owner: OwnerDep
) -> ConversationDetail:
    """Get a conversation with its messages."""
    conversation = await _existing(session, owner, conversation_id, with_messages=True)
    return ConversationDetail.model_validate(conversation)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: uuid.UUID, session: SessionDep, owner: OwnerDep
) -> None:
    """Delete a conversation and its messages (its files stay; see DELETE /v1/files/{id})."""
    conversation = await _existing(session, owner, conversation_id)
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
    },
)
async def send_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    provider: LLMDep,
) -> Exchange | StreamingResponse:
    """Send a message and get the assistant's reply (streamed with Accept: text/event-stream)."""
    conversation = await _existing(session, owner, conversation_id)
    try:
        user_message = await service.add_user_message(
            session=session, conversation=conversation, data=body
        )
    except service.UnknownFilesError as exc:
        # The same 422 shape as any other invalid field, so clients parse one format.
        raise RequestValidationError(
            [
                {
                    "type": "unknown_file",
                    "loc": ("body", "file_ids", body.file_ids.index(file_id)),
                    "msg": f"file {file_id} not found",
                    "input": str(file_id),
                }
                for file_id in exc.missing
            ]
        ) from None
    context = await service.build_context(
        session=session,
        conversation=conversation,
        llm_config=settings.config.llm,
        uploads_dir=settings.uploads_dir,
    )
    if EVENT_STREAM in request.headers.get("accept", ""):
        # Hand the connection back now rather than hold it for the whole stream;
        # the reply is stored with a session of its own when the stream ends.
        await session.close()
        events = _stream_reply(provider, context, conversation.id, sessionmaker)
        return StreamingResponse(
            events,
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        reply = await provider.complete(context)
    except LLMError as exc:
        # The user's message is already committed: the client may simply retry the reply.
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
    assistant_message = await service.add_assistant_message(
        session=session, conversation_id=conversation.id, content=reply
    )
    return Exchange(
        user_message=MessageOut.model_validate(user_message),
        assistant_message=MessageOut.model_validate(assistant_message),
    )


async def _stream_reply(
    provider: LLMProvider,
    context: list[ChatMessage],
    conversation_id: uuid.UUID,
    sessionmaker: SessionmakerDep,
) -> AsyncIterator[str]:
    """Relay tokens as they come; store the whole reply once the stream has ended."""
    parts: list[str] = []
    try:
        async for token in provider.stream(context):
            parts.append(token)
            yield _event("token", {"content": token})
    except LLMError as exc:
        yield _event("error", {"detail": str(exc)})
        return
    async with sessionmaker() as session:
        message = await service.add_assistant_message(
            session=session, conversation_id=conversation_id, content="".join(parts)
        )
    yield _event(
        "done", {"assistant_message": MessageOut.model_validate(message).model_dump(mode="json")}
    )


def _event(name: str, data: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _existing(
    session: SessionDep, owner: str, conversation_id: uuid.UUID, *, with_messages: bool = False
) -> Conversation:
    conversation = await service.get_conversation(
        session=session, owner=owner, conversation_id=conversation_id, with_messages=with_messages
    )
    # Unknown and foreign ids take the same query and get the same answer.
    if conversation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"conversation {conversation_id} not found")
    return conversation

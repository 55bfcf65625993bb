"""Conversation operations; each write commits explicitly."""

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import CLIENT_ID_UNIQUE, Conversation, Message
from app.conversations.schemas import ConversationCreate, MessageCreate, tool_call_data
from app.core.db import insert_new, insert_once
from app.files import service as files_service
from app.llm.base import Completion, ToolCall


class UnknownFilesError(Exception):
    """A message names file ids that are unknown or another owner's: (position, id) each."""

    def __init__(self, missing: list[tuple[int, uuid.UUID]]) -> None:
        super().__init__(", ".join(str(file_id) for _, file_id in missing))
        self.missing = missing


@dataclass(frozen=True, slots=True)
class ClientResult:
    """A client's result for a call of one of its tools, and the id it gave the message."""

    call_id: str
    content: str
    client_id: str


async def create_conversation(
    *, session: AsyncSession, owner: str, data: ConversationCreate
) -> Conversation:
    conversation = await insert_new(session, Conversation(owner=owner, title=data.title))
    await session.commit()
    return conversation


# The most conversations a listing counts. Counting reads one index entry per row, so an
# owner with a million conversations would pay for all of them on every page.
COUNT_LIMIT = 10_000


class UnknownCursorError(Exception):
    """The id a page was asked to start before is not one of the rows paged (another
    owner's, or another conversation's, is as unknown)."""


# Where a page starts: the sort key of the row `before` names, if it is one of those paged.
Position = tuple[datetime, uuid.UUID]


async def _position(
    session: AsyncSession,
    model: type[Conversation] | type[Message],
    row_id: uuid.UUID | None,
    scope: ColumnElement[bool],
) -> Position | None:
    """The sort key of the row row_id names, if it is among those scope selects (None
    without an id; UnknownCursorError when it is not one of them)."""
    if row_id is None:
        return None
    query = select(model.created_at, model.id).where(model.id == row_id, scope)
    if (found := (await session.execute(query)).one_or_none()) is None:
        raise UnknownCursorError
    return found[0], found[1]


async def list_conversations(
    *, session: AsyncSession, owner: str, limit: int, offset: int, before: uuid.UUID | None
) -> tuple[list[Conversation], int, bool]:
    """Return one page of the owner's conversations, newest first (those created before the
    conversation `before`, if given), their count, which stops at COUNT_LIMIT + 1 (past
    COUNT_LIMIT it only says "more"), and whether older ones follow the page."""
    counted = (
        select(Conversation.id).where(Conversation.owner == owner).limit(COUNT_LIMIT + 1)
    ).subquery()
    total = await session.scalar(select(func.count()).select_from(counted))
    start = await _position(session, Conversation, before, Conversation.owner == owner)
    # One more than the page says whether more follow.
    query = page_query(owner=owner, limit=limit + 1, offset=offset, before=start)
    page = list(await session.scalars(query))
    return page[:limit], total or 0, len(page) > limit


def page_query(
    *, owner: str, limit: int, offset: int, before: Position | None = None
) -> Select[Conversation]:
    """Select one page of the owner's conversations, newest first, from `before` on."""
    # Both sort keys descending: ix_conversations_owner_created_at serves it, read backwards.
    query = select(Conversation).where(Conversation.owner == owner)
    if before is not None:
        query = query.where(tuple_(Conversation.created_at, Conversation.id) < tuple_(*before))
    return (
        query.order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(limit)
        .offset(offset)
    )


async def get_conversation(
    *, session: AsyncSession, owner: str, conversation_id: uuid.UUID
) -> Conversation | None:
    """Return the owner's conversation; another owner's is as absent as an unknown id."""
    return await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.owner == owner)
    )


async def message_page(
    *, session: AsyncSession, conversation_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> tuple[list[Message], bool]:
    """The conversation's newest `limit` messages (those before the message `before`, if
    given), oldest first, and whether it holds earlier ones. UnknownCursorError: `before` is
    not a message of this conversation."""
    start = await _position(session, Message, before, Message.conversation_id == conversation_id)
    # One more than the page says whether earlier messages exist.
    query = messages_query(conversation_id=conversation_id, limit=limit + 1, before=start)
    found = list(await session.scalars(query))
    return found[:limit][::-1], len(found) > limit


def messages_query(
    *, conversation_id: uuid.UUID, limit: int, before: Position | None = None
) -> Select[Message]:
    """Select the conversation's newest messages from `before` on, newest first."""
    # ix_messages_conversation_id_created_at serves it, read backwards.
    query = select(Message).where(Message.conversation_id == conversation_id)
    if before is not None:
        query = query.where(tuple_(Message.created_at, Message.id) < tuple_(*before))
    return query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)


async def delete_conversation(*, session: AsyncSession, conversation: Conversation) -> None:
    await session.delete(conversation)
    await session.commit()


async def add_user_message(
    *, session: AsyncSession, conversation: Conversation, data: MessageCreate
) -> Message:
    """Store the user's message, after checking that every referenced file is the owner's."""
    return await _add(session, await _user_message(session, conversation, data))


async def add_client_message(
    *, session: AsyncSession, conversation: Conversation, data: MessageCreate, client_id: str
) -> Message | None:
    """Store the user's message a client gave this id, as add_user_message, once: None when
    the conversation holds it already (a re-run sent it again). The unique index decides, not
    a look first: two runs racing with one message both find it stored once."""
    message = await _user_message(session, conversation, data, client_id)
    return await _add_once(session, message)


async def add_client_results(
    *, session: AsyncSession, conversation_id: uuid.UUID, results: Sequence[ClientResult]
) -> None:
    """Store the results a client sends for the calls of its tools, each once by the id the
    client gave it (as add_client_message), in one transaction."""
    for result in results:
        row = Message(
            conversation_id=conversation_id,
            role="tool",
            content=result.content,
            tool_call_id=result.call_id,
            client_id=result.client_id,
        )
        await insert_once(session, row, CLIENT_ID_UNIQUE)
    await session.commit()


async def pending_calls(*, session: AsyncSession, conversation_id: uuid.UUID) -> list[ToolCall]:
    """The tool calls of the conversation's last model step that have no result yet (a
    client's, which the turn ended with); none once a user message came after it."""
    last = await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.role != "tool")
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )
    if last is None or not last.tool_calls:
        return []
    answered = set(
        await session.scalars(
            select(Message.tool_call_id).where(
                Message.conversation_id == conversation_id,
                Message.role == "tool",
                Message.created_at > last.created_at,
            )
        )
    )
    return [call for call in last.calls if call.id not in answered]


async def answered_calls(
    *, session: AsyncSession, conversation_id: uuid.UUID, call_ids: Collection[str]
) -> set[str]:
    """Which of these tool call ids the conversation holds a result for."""
    found = await session.scalars(
        select(Message.tool_call_id).where(
            Message.conversation_id == conversation_id,
            Message.role == "tool",
            Message.tool_call_id.in_(call_ids),
        )
    )
    return {call_id for call_id in found if call_id is not None}


async def _user_message(
    session: AsyncSession,
    conversation: Conversation,
    data: MessageCreate,
    client_id: str | None = None,
) -> Message:
    """The user's message to store (UnknownFilesError: a file id is not the owner's)."""
    found = await files_service.get_files(
        session=session, owner=conversation.owner, file_ids=data.file_ids
    )
    owned = {file.id for file in found}
    if missing := [(i, id_) for i, id_ in enumerate(data.file_ids) if id_ not in owned]:
        raise UnknownFilesError(missing)
    return Message(
        conversation_id=conversation.id,
        role="user",
        content=data.content,
        file_ids=data.file_ids,
        client_id=client_id,
    )


def model_step(completion: Completion) -> dict[str, Any]:
    """The columns of the message that stores what one model call answered: its text, the
    tools it asks for, who answered and its usage (a run's steps are written from it too)."""
    usage = completion.usage
    return {
        "role": "assistant",
        "content": completion.content,
        "tool_calls": [tool_call_data(call) for call in completion.tool_calls],
        "provider": completion.provider,
        "model": completion.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


async def add_step(*, session: AsyncSession, conversation_id: uuid.UUID, **columns: Any) -> Message:
    """Store a step of a turn: a model call's answer (model_step's columns) or a tool result."""
    return await _add(session, Message(conversation_id=conversation_id, **columns))


async def _add(session: AsyncSession, message: Message) -> Message:
    await insert_new(session, message)
    await session.commit()
    return message


async def _add_once(session: AsyncSession, message: Message) -> Message | None:
    stored = await insert_once(session, message, CLIENT_ID_UNIQUE)
    await session.commit()
    return stored


@dataclass(frozen=True, slots=True)
class Said:
    """A message as a turn's history reads it: no more columns than that needs."""

    role: str
    content: str
    file_ids: list[uuid.UUID]
    tool_calls: list[dict[str, Any]]
    tool_call_id: str | None

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in self.tool_calls)


# Built once: every turn reads its history (a worker, several times a second).
_RECENT = (
    select(
        Message.role, Message.content, Message.file_ids, Message.tool_calls, Message.tool_call_id
    )
    .where(Message.conversation_id == bindparam("conversation_id"))
    .order_by(Message.created_at.desc(), Message.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def recent_messages(
    *, session: AsyncSession, conversation_id: uuid.UUID, limit: int
) -> list[Said]:
    """The conversation's last `limit` messages, oldest first, starting after any tool
    results whose call was cut off (they would answer a call the model never sees)."""
    rows = await session.execute(_RECENT, {"conversation_id": conversation_id, "limit": limit})
    recent = [Said(*row) for row in rows][::-1]
    while recent and recent[0].role == "tool":
        recent.pop(0)
    return recent

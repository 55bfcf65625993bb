"""Conversation operations; each write commits explicitly."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from app.agent.loop import Decision, Refusal, StopReason
from app.agent.tools import ToolContext, ToolError, ToolResult
from app.config.sections import LLMConfig
from app.config.settings import Settings
from app.conversations.models import Conversation, Message
from app.conversations.schemas import ConversationCreate, MessageCreate
from app.core.db import insert_new
from app.files import service as files_service
from app.files import storage
from app.files.models import StoredFile
from app.llm.base import ChatMessage, Completion, ToolCall, ToolSpec
from app.spend.budgets import Account


@dataclass(frozen=True, slots=True)
class ConversationRecorder:
    """A turn a client waits for: its steps go straight into the conversation."""

    sessionmaker: async_sessionmaker[AsyncSession]
    conversation_id: uuid.UUID
    account: Account

    async def step(self, completion: Completion) -> Message:
        async with self.sessionmaker() as session:
            # Committed with the step.
            await self.account.settle(session, completion)
            return await add_model_step(
                session=session, conversation_id=self.conversation_id, completion=completion
            )

    async def result(self, call: ToolCall, result: ToolResult) -> Message:
        async with self.sessionmaker() as session:
            return await add_tool_result(
                session=session,
                conversation_id=self.conversation_id,
                call=call,
                content=result.content,
            )

    async def halt(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> StopReason | Refusal | None:
        return await self.account.admit(messages, tools)

    async def release(self) -> None:
        await self.account.release()

    async def decision(self, call: ToolCall) -> Decision | None:
        # The client waits for this turn's answer, not for a person: a call that needs
        # approval does not run, and the model is told it takes a background run.
        return "unattended"


def tool_context(
    *,
    owner: str,
    conversation_id: uuid.UUID | None,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> ToolContext:
    """What the tools of a turn on this conversation (or on none) may reach."""

    async def read_attached(file_id: uuid.UUID) -> str:
        if conversation_id is None:
            raise ToolError("no files are attached to this turn")
        async with sessionmaker() as session:
            # Attached here, and the owner's: the same answer for any other id.
            attached = await session.scalar(
                select(Message.id)
                .where(
                    Message.conversation_id == conversation_id, Message.file_ids.any_() == file_id
                )
                .limit(1)
            )
            found = await files_service.get_files(session=session, owner=owner, file_ids=[file_id])
        if attached is None or not found:
            raise ToolError(f"file {file_id} is not attached to this conversation")
        record = found[0]
        if not files_service.is_text(record.content_type):
            raise ToolError(f"file {record.filename} is {record.content_type}, not text")
        path = storage.blob_path(settings.uploads_dir, record.id)
        return await storage.read_text(path, settings.config.llm.max_file_chars)

    return ToolContext(owner, conversation_id, settings.config.agent, read_attached)


class UnknownFilesError(Exception):
    """A message refers to file ids that do not exist or belong to another owner."""

    def __init__(self, missing: list[uuid.UUID]) -> None:
        super().__init__(", ".join(str(file_id) for file_id in missing))
        self.missing = missing


async def create_conversation(
    *, session: AsyncSession, owner: str, data: ConversationCreate
) -> Conversation:
    conversation = await insert_new(session, Conversation(owner=owner, title=data.title))
    await session.commit()
    return conversation


# The most conversations a listing counts. Counting reads one index entry per row, so an
# owner with a million conversations would pay for all of them on every page.
COUNT_LIMIT = 10_000


async def list_conversations(
    *, session: AsyncSession, owner: str, limit: int, offset: int
) -> tuple[list[Conversation], int]:
    """Return one page of the owner's conversations, newest first, and their count.

    The count stops at COUNT_LIMIT + 1: past COUNT_LIMIT it only says "more".
    """
    counted = (
        select(Conversation.id).where(Conversation.owner == owner).limit(COUNT_LIMIT + 1)
    ).subquery()
    total = await session.scalar(select(func.count()).select_from(counted))
    page = await session.scalars(page_query(owner=owner, limit=limit, offset=offset))
    return list(page), total or 0


def page_query(*, owner: str, limit: int, offset: int) -> Select[Conversation]:
    """Select one page of the owner's conversations, newest first."""
    # Both sort keys descending: ix_conversations_owner_created_at serves it, read backwards.
    return (
        select(Conversation)
        .where(Conversation.owner == owner)
        .order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(limit)
        .offset(offset)
    )


async def get_conversation(
    *,
    session: AsyncSession,
    owner: str,
    conversation_id: uuid.UUID,
    with_messages: bool = False,
) -> Conversation | None:
    """Return the owner's conversation; another owner's is as absent as an unknown id."""
    query = select(Conversation).where(
        Conversation.id == conversation_id, Conversation.owner == owner
    )
    if with_messages:
        query = query.options(selectinload(Conversation.messages))
    return await session.scalar(query)


async def delete_conversation(*, session: AsyncSession, conversation: Conversation) -> None:
    await session.delete(conversation)
    await session.commit()


async def add_user_message(
    *, session: AsyncSession, conversation: Conversation, data: MessageCreate
) -> Message:
    """Store the user's message, after checking that every referenced file is the owner's."""
    found = await files_service.get_files(
        session=session, owner=conversation.owner, file_ids=data.file_ids
    )
    missing = [file_id for file_id in data.file_ids if file_id not in {f.id for f in found}]
    if missing:
        raise UnknownFilesError(missing)
    return await _add_message(
        session=session,
        conversation_id=conversation.id,
        role="user",
        content=data.content,
        file_ids=data.file_ids,
    )


def model_step(completion: Completion) -> dict[str, Any]:
    """The columns of the message that stores what one model call answered: its text, the
    tools it asks for, who answered and its usage (a run's steps are written from it too)."""
    usage = completion.usage
    return {
        "role": "assistant",
        "content": completion.content,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in completion.tool_calls
        ],
        "provider": completion.provider,
        "model": completion.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


async def add_model_step(
    *, session: AsyncSession, conversation_id: uuid.UUID, completion: Completion
) -> Message:
    """Store what one model call answered."""
    return await _add_message(
        session=session, conversation_id=conversation_id, **model_step(completion)
    )


async def add_tool_result(
    *, session: AsyncSession, conversation_id: uuid.UUID, call: ToolCall, content: str
) -> Message:
    return await _add_message(
        session=session,
        conversation_id=conversation_id,
        role="tool",
        content=content,
        tool_call_id=call.id,
    )


async def _add_message(
    *,
    session: AsyncSession,
    conversation_id: uuid.UUID,
    role: str,
    content: str,
    file_ids: list[uuid.UUID] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    **step: Any,
) -> Message:
    """A message of the conversation; `step` carries a model step's other columns."""
    message = Message(
        conversation_id=conversation_id,
        role=role,
        content=content,
        file_ids=file_ids or [],
        tool_calls=tool_calls or [],
        tool_call_id=tool_call_id,
        **step,
    )
    await insert_new(session, message)
    await session.commit()
    return message


async def build_context(
    *, session: AsyncSession, conversation: Conversation, llm_config: LLMConfig, uploads_dir: Path
) -> list[ChatMessage]:
    """Return the system prompt and the recent history, with attached text files inlined."""
    recent = list(
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(llm_config.history_limit)
        )
    )[::-1]
    # A cut through a tool step would leave results without the call that asked for them.
    while recent and recent[0].role == "tool":
        recent.pop(0)
    # Every attachment of the history in one query.
    file_ids = [file_id for message in recent for file_id in message.file_ids]
    files = await files_service.get_files(
        session=session, owner=conversation.owner, file_ids=file_ids
    )
    by_id = {record.id: record for record in files}
    context = [ChatMessage("system", llm_config.system_prompt)] if llm_config.system_prompt else []
    for message in recent:
        attached = [by_id[file_id] for file_id in message.file_ids if file_id in by_id]
        content = message.content + await _attachments(attached, llm_config, uploads_dir)
        context.append(_as_chat(message, content))
    return context


def _as_chat(message: Message, content: str) -> ChatMessage:
    if message.role == "tool":
        return ChatMessage("tool", content, tool_call_id=message.tool_call_id)
    if message.role == "assistant":
        return ChatMessage("assistant", content, message.calls)
    return ChatMessage("user", content)


async def _attachments(files: list[StoredFile], llm_config: LLMConfig, uploads_dir: Path) -> str:
    parts = []
    for record in files:
        if files_service.is_text(record.content_type):
            text = await storage.read_text(
                storage.blob_path(uploads_dir, record.id), llm_config.max_file_chars
            )
            parts.append(f"\n\n--- file {record.filename} ---\n{text}")
        else:
            parts.append(f"\n\n--- file {record.filename} ({record.content_type}, not text) ---")
    return "".join(parts)

"""Conversation operations; each write commits explicitly."""

import uuid
from pathlib import Path

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.conversations.models import Conversation, Message
from app.conversations.schemas import ConversationCreate, MessageCreate
from app.core.config import LLMConfig
from app.files import service as files_service
from app.files import storage
from app.llm.base import ChatMessage


class UnknownFilesError(Exception):
    """A message refers to file ids that do not exist or belong to another owner."""

    def __init__(self, missing: list[uuid.UUID]) -> None:
        super().__init__(", ".join(str(file_id) for file_id in missing))
        self.missing = missing


async def create_conversation(
    *, session: AsyncSession, owner: str, data: ConversationCreate
) -> Conversation:
    conversation = Conversation(owner=owner, title=data.title)
    session.add(conversation)
    await session.commit()
    return conversation


async def list_conversations(
    *, session: AsyncSession, owner: str, limit: int, offset: int
) -> tuple[list[Conversation], int]:
    """Return one page of the owner's conversations, newest first, and their count."""
    total = await session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.owner == owner)
    )
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


async def add_assistant_message(
    *, session: AsyncSession, conversation_id: uuid.UUID, content: str
) -> Message:
    return await _add_message(
        session=session, conversation_id=conversation_id, role="assistant", content=content
    )


async def _add_message(
    *,
    session: AsyncSession,
    conversation_id: uuid.UUID,
    role: str,
    content: str,
    file_ids: list[uuid.UUID] | None = None,
) -> Message:
    message = Message(
        conversation_id=conversation_id, role=role, content=content, file_ids=file_ids or []
    )
    session.add(message)
    await session.commit()
    return message


async def build_context(
    *, session: AsyncSession, conversation: Conversation, llm_config: LLMConfig, uploads_dir: Path
) -> list[ChatMessage]:
    """Return the system prompt and the recent history, with attached text files inlined."""
    recent = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.created_at.desc())
        .limit(llm_config.history_limit)
    )
    context = [ChatMessage("system", llm_config.system_prompt)] if llm_config.system_prompt else []
    for message in reversed(list(recent)):
        attached = await _attachments(session, conversation.owner, message, llm_config, uploads_dir)
        content = message.content + attached
        context.append(ChatMessage("user" if message.role == "user" else "assistant", content))
    return context


async def _attachments(
    session: AsyncSession, owner: str, message: Message, llm_config: LLMConfig, uploads_dir: Path
) -> str:
    parts = []
    files = await files_service.get_files(session=session, owner=owner, file_ids=message.file_ids)
    for record in files:
        if files_service.is_text(record.content_type):
            text = await storage.read_text(
                storage.blob_path(uploads_dir, record.id), llm_config.max_file_chars
            )
            parts.append(f"\n\n--- file {record.filename} ---\n{text}")
        else:
            parts.append(f"\n\n--- file {record.filename} ({record.content_type}, not text) ---")
    return "".join(parts)

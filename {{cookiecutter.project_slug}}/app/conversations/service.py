"""Conversation operations; each write commits explicitly."""

import uuid
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.conversations.models import Conversation, Message
from app.conversations.schemas import ConversationCreate, MessageCreate
from app.core.config import LLMConfig
from app.files import service as files_service
from app.files import storage
from app.llm.base import ChatMessage


class UnknownFilesError(Exception):
    """A message refers to file ids that do not exist."""

    def __init__(self, missing: list[uuid.UUID]) -> None:
        super().__init__(", ".join(str(file_id) for file_id in missing))
        self.missing = missing


async def create_conversation(*, session: AsyncSession, data: ConversationCreate) -> Conversation:
    conversation = Conversation(title=data.title)
    session.add(conversation)
    await session.commit()
    return conversation


async def list_conversations(
    *, session: AsyncSession, limit: int, offset: int
) -> tuple[list[Conversation], int]:
    """Return one page, newest first, and the total count."""
    total = await session.scalar(select(func.count()).select_from(Conversation))
    page = await session.scalars(
        select(Conversation)
        .order_by(Conversation.created_at.desc(), Conversation.id)
        .limit(limit)
        .offset(offset)
    )
    return list(page), total or 0


async def get_conversation(
    *, session: AsyncSession, conversation_id: uuid.UUID, with_messages: bool = False
) -> Conversation | None:
    options = [selectinload(Conversation.messages)] if with_messages else []
    return await session.get(Conversation, conversation_id, options=options)


async def delete_conversation(*, session: AsyncSession, conversation: Conversation) -> None:
    await session.delete(conversation)
    await session.commit()


async def add_user_message(
    *, session: AsyncSession, conversation: Conversation, data: MessageCreate
) -> Message:
    """Store the user's message, after checking that every referenced file exists."""
    found = await files_service.get_files(session=session, file_ids=data.file_ids)
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
    *, session: AsyncSession, conversation_id: uuid.UUID, llm: LLMConfig, uploads_dir: Path
) -> list[ChatMessage]:
    """Return the system prompt and the recent history, with attached text files inlined."""
    recent = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at.desc())
        .limit(llm.history_limit)
    )
    context = [ChatMessage("system", llm.system_prompt)] if llm.system_prompt else []
    for message in reversed(list(recent)):
        content = message.content + await _attachments(session, message, llm, uploads_dir)
        context.append(ChatMessage("user" if message.role == "user" else "assistant", content))
    return context


async def _attachments(
    session: AsyncSession, message: Message, llm: LLMConfig, uploads_dir: Path
) -> str:
    parts = []
    for record in await files_service.get_files(session=session, file_ids=message.file_ids):
        if files_service.is_text(record.content_type):
            text = await storage.read_text(
                storage.blob_path(uploads_dir, record.id), llm.max_file_chars
            )
            parts.append(f"\n\n--- file {record.filename} ---\n{text}")
        else:
            parts.append(f"\n\n--- file {record.filename} ({record.content_type}, not text) ---")
    return "".join(parts)

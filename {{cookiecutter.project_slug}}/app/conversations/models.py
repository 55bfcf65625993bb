"""Conversation and message tables."""

import uuid

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, CreatedAtMixin, IdMixin, OwnedMixin


class Conversation(IdMixin, CreatedAtMixin, OwnedMixin, Base):
    __tablename__ = "conversations"
    # Serves the list: one owner's rows, newest first.
    __table_args__ = (Index("ix_conversations_owner_created_at", "owner", "created_at", "id"),)

    title: Mapped[str | None] = mapped_column(String(200))
    # lazy="raise": history is loaded on purpose, never by an accidental attribute access.
    messages: Mapped[list["Message"]] = relationship(
        back_populates="conversation",
        order_by="Message.created_at",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )


class Message(IdMixin, CreatedAtMixin, Base):
    """A message is reached only through its conversation, which carries the owner."""

    __tablename__ = "messages"
    __table_args__ = (CheckConstraint("role IN ('user', 'assistant')", name="role"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    file_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), default=list)
    conversation: Mapped[Conversation] = relationship(back_populates="messages", lazy="raise")

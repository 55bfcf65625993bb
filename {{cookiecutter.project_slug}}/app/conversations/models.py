"""Conversation and message tables."""

import uuid
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, CreatedAtMixin, IdMixin, OwnedMixin
from app.llm.base import ToolCall, Usage

# The longest message id a client may give (AG-UI's are UUIDs or nanoids).
CLIENT_ID_CHARS = 200


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
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant', 'tool')", name="role"),
        # A conversation's messages in order: a turn's history and a page of them, newest
        # first, read from it (a long thread costs no more than a short one).
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at", "id"),
        Index(
            "uq_messages_conversation_client_id",
            "conversation_id",
            "client_id",
            unique=True,
            postgresql_where=text("client_id IS NOT NULL"),
        ),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    file_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), default=list)
    # An assistant message's tool calls ({"id", "name", "arguments"} each); a tool message's
    # answer names the call it answers. Both empty for plain messages.
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    tool_call_id: Mapped[str | None] = mapped_column(String(100))
    # The id a client gave a message it sent (AG-UI's user and tool messages): sent again, it
    # is not stored twice (uq_messages_conversation_client_id).
    client_id: Mapped[str | None] = mapped_column(String(CLIENT_ID_CHARS))
    # The background run that wrote it, if any (its steps count toward its max_steps).
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    # The model call that wrote an assistant message: who answered, and its tokens (the
    # cache ones are part of the prompt's).
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_read_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)
    conversation: Mapped[Conversation] = relationship(back_populates="messages", lazy="raise")

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in self.tool_calls)

    @property
    def usage(self) -> Usage | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        cached = (self.cache_read_tokens or 0, self.cache_write_tokens or 0)
        return Usage(self.prompt_tokens, self.completion_tokens, *cached)


# A message a client sends again is found by this index, not stored twice (insert_once).
CLIENT_ID_UNIQUE = next(
    index
    for index in cast(Table, Message.__table__).indexes
    if index.name == "uq_messages_conversation_client_id"
)

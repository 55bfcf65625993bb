"""A conversation's messages read in order from an index: (conversation_id, created_at, id).

Every turn reads its conversation's newest messages, and reading a conversation pages through
them newest first. With an index on conversation_id alone, both read and sorted every message
of the conversation: a thread of 100,000 messages cost each of its turns all of them. The new
index leads with conversation_id, so it also serves what the old one did (the cascade of a
deleted conversation), which is dropped.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_conversation_id_created_at",
        "messages",
        ["conversation_id", "created_at", "id"],
        unique=False,
    )
    op.drop_index("ix_messages_conversation_id", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"], unique=False)
    op.drop_index("ix_messages_conversation_id_created_at", table_name="messages")

"""The id a client gave a message (an AG-UI message's id): a run that sends the same message
again, as a regenerate does, finds it stored instead of storing it twice.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: messages written before this revision, and by the other ways in, have none.
    op.add_column("messages", sa.Column("client_id", sa.String(length=200), nullable=True))
    op.create_index(
        "uq_messages_conversation_client_id",
        "messages",
        ["conversation_id", "client_id"],
        unique=True,
        postgresql_where=sa.text("client_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_conversation_client_id", table_name="messages")
    op.drop_column("messages", "client_id")

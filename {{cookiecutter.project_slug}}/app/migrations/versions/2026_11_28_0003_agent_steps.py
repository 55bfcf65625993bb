"""Agent steps: tool messages, the tool calls of assistant messages, and token usage.

Existing messages stay valid: they get no tool calls, no tool_call_id and no usage.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column(
            "tool_calls",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("messages", sa.Column("tool_call_id", sa.String(length=100), nullable=True))
    op.add_column("messages", sa.Column("prompt_tokens", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("completion_tokens", sa.Integer(), nullable=True))
    op.drop_constraint(op.f("ck_messages_role"), "messages", type_="check")
    op.create_check_constraint(
        op.f("ck_messages_role"), "messages", "role IN ('user', 'assistant', 'tool')"
    )


def downgrade() -> None:
    # Tool messages have no place in the older schema: they go with it.
    op.execute("DELETE FROM messages WHERE role = 'tool'")
    op.drop_constraint(op.f("ck_messages_role"), "messages", type_="check")
    op.create_check_constraint(
        op.f("ck_messages_role"), "messages", "role IN ('user', 'assistant')"
    )
    for column in ("completion_tokens", "prompt_tokens", "tool_call_id", "tool_calls"):
        op.drop_column("messages", column)

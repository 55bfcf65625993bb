"""What a run answering an OpenAI Responses request needs beyond a message: the client's
tools, its output schema, its instructions, the response it continues, and whether the client
asked for it in the background.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Defaults that describe every run written before: no client tools, a background run.
    op.add_column(
        "runs",
        sa.Column(
            "client_tools",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "runs", sa.Column("output_format", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("runs", sa.Column("instructions", sa.Text(), nullable=True))
    op.add_column(
        "runs",
        sa.Column(
            "previous_run_id",
            sa.Uuid(),
            sa.ForeignKey("runs.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )
    op.add_column(
        "runs",
        sa.Column("background", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    for column in ("background", "previous_run_id", "instructions", "output_format"):
        op.drop_column("runs", column)
    op.drop_column("runs", "client_tools")

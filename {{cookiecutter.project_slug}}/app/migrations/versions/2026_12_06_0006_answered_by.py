"""Which provider and model answered each model step (a fallback may have), and the prompt
tokens it read from and wrote to the provider's prompt cache; a run shows its latest.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # All nullable: messages and runs written before this revision name no model.
    op.add_column("messages", sa.Column("provider", sa.String(length=32), nullable=True))
    op.add_column("messages", sa.Column("model", sa.String(length=200), nullable=True))
    op.add_column("messages", sa.Column("cache_read_tokens", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("cache_write_tokens", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("provider", sa.String(length=32), nullable=True))
    op.add_column("runs", sa.Column("model", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "model")
    op.drop_column("runs", "provider")
    op.drop_column("messages", "cache_write_tokens")
    op.drop_column("messages", "cache_read_tokens")
    op.drop_column("messages", "model")
    op.drop_column("messages", "provider")

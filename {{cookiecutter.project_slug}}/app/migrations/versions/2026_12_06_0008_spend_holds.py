"""Budgets: what each model call in progress holds against its owner's budget.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spend_holds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("holder", sa.Uuid(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_holds")),
        sa.UniqueConstraint("holder", name=op.f("uq_spend_holds_holder")),
    )
    op.create_index(
        "ix_spend_holds_owner_expires_at", "spend_holds", ["owner", "expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_spend_holds_owner_expires_at", table_name="spend_holds")
    op.drop_table("spend_holds")

"""Runs that wait for a person to approve tool calls: the status awaiting_approval (longer
than the column allowed) and each run's approvals.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "('queued', 'running', 'succeeded', 'failed', 'cancelled')"
NEW_STATUSES = "('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_runs_status"), "runs", type_="check")
    op.alter_column(
        "runs", "status", type_=sa.String(length=32), existing_type=sa.String(length=16)
    )
    op.create_check_constraint(op.f("ck_runs_status"), "runs", f"status IN {NEW_STATUSES}")
    op.add_column(
        "runs",
        sa.Column(
            "approvals",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    # Without approvals a waiting run cannot go on: it ends as cancelled, its calls unrun.
    op.execute(
        "UPDATE runs SET status = 'cancelled', stop_reason = 'cancelled', "
        "finished_at = clock_timestamp() WHERE status = 'awaiting_approval'"
    )
    op.drop_column("runs", "approvals")
    op.drop_constraint(op.f("ck_runs_status"), "runs", type_="check")
    op.alter_column(
        "runs", "status", type_=sa.String(length=16), existing_type=sa.String(length=32)
    )
    op.create_check_constraint(op.f("ck_runs_status"), "runs", f"status IN {OLD_STATUSES}")

"""Every conversation and file belongs to the owner of the API key that created it.

Rows from before this revision go to the owner of the FIRST key in API_KEYS (its name for a
`name:key` entry, else an HMAC of the key with SECRET_KEY): the key a single-key service was
already using keeps seeing its data. So this revision reads API_KEYS and SECRET_KEY (or their
NAME_FILE variants) when such rows exist, and stops, changing nothing, without them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.config import ConfigError, KeySettings, load_part
from app.core.security import owner_of

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED_TABLES = ("conversations", "files")


def upgrade() -> None:
    for table in OWNED_TABLES:
        op.add_column(table, sa.Column("owner", sa.String(length=100), nullable=True))
    if _has_rows():
        owner = _first_key_owner()
        for table in OWNED_TABLES:
            op.execute(sa.table(table, sa.column("owner")).update().values(owner=owner))
    for table in OWNED_TABLES:
        op.alter_column(table, "owner", nullable=False)
    op.create_index(
        op.f("ix_conversations_owner_created_at"),
        "conversations",
        ["owner", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_files_owner_created_at"), "files", ["owner", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_files_owner_created_at"), table_name="files")
    op.drop_index(op.f("ix_conversations_owner_created_at"), table_name="conversations")
    for table in OWNED_TABLES:
        op.drop_column(table, "owner")


def _has_rows() -> bool:
    bind = op.get_bind()
    return any(
        bind.scalar(sa.select(sa.exists().select_from(sa.table(table)))) for table in OWNED_TABLES
    )


def _first_key_owner() -> str:
    try:
        keys = load_part(KeySettings)
    except ConfigError as exc:
        # PostgreSQL runs the whole migration in one transaction: nothing has changed.
        raise ConfigError(
            "migration 0002 gives existing conversations and files to the first key in "
            "API_KEYS, and needs API_KEYS and SECRET_KEY (or API_KEYS_FILE and "
            f"SECRET_KEY_FILE) for that: {exc}"
        ) from None
    return owner_of(keys.api_keys[0], keys.secret_key)

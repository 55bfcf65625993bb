"""Every conversation and file belongs to the owner of the API key that created it.

Rows from before this revision go to the owner of the FIRST key in API_KEYS (its name for a
`name:key` entry, else an HMAC of the key with SECRET_KEY): the key a single-key service was
already using keeps seeing its data. So this revision reads API_KEYS and SECRET_KEY (or their
NAME_FILE variants) when such rows exist, and stops, changing nothing, without them.

Migrations are frozen history: this revision reads the two settings and derives the first
key's owner with code of its own, written as the app did it on 2026-11-27, so that a later
change to the app cannot change what this revision writes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import hmac
import os
import re
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from dotenv import dotenv_values

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
    api_keys, secret_key = _setting("API_KEYS"), _setting("SECRET_KEY")
    first = next((entry.strip() for entry in (api_keys or "").split(",") if entry.strip()), "")
    name, separator, value = first.partition(":")
    if not separator:
        name, value = "", first
    problem = (
        "API_KEYS must hold at least one key"
        if not first
        else "SECRET_KEY is not set"
        if not secret_key
        else "the first entry of API_KEYS is neither name:key nor a bare key"
        if (separator and not _KEY_NAME.fullmatch(name)) or not value.strip()
        else None
    )
    if problem is not None:
        # PostgreSQL runs the whole migration in one transaction: nothing has changed. The
        # line alembic's env.py prints for the app's configuration errors, without a traceback.
        raise SystemExit(
            "configuration error: migration 0002 gives existing conversations and files to the "
            "first key in API_KEYS, and needs API_KEYS and SECRET_KEY (or API_KEYS_FILE and "
            f"SECRET_KEY_FILE) for that: {problem}"
        )
    return _owner_of(name or None, value.strip(), secret_key or "")


_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def _setting(name: str) -> str | None:
    """A setting as the app read it: the environment, then the file NAME_FILE names (from the
    environment or .env), then .env."""
    env_file = Path(".env")
    dotenv = {k: v for k, v in dotenv_values(env_file).items() if v} if env_file.is_file() else {}
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE", dotenv.get(f"{name}_FILE"))
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SystemExit(
                f"configuration error: migration 0002: {name}_FILE={path} cannot be read: "
                f"{exc.strerror}"
            ) from None
    return dotenv.get(name)


def _owner_of(name: str | None, value: str, secret_key: str) -> str:
    # Rows are stored under this value: the app's owner_of (app.core.security) must agree.
    if name is not None:
        return name
    digest = hmac.new(secret_key.encode(), value.encode(), "sha256")
    return "key:" + digest.hexdigest()[:32]

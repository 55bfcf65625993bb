"""Every conversation and file belongs to the owner of the API key that created it.

Rows from before this revision go to the owner of the FIRST key in API_KEYS (its name for a
`name:key` entry, else an HMAC of the key with SECRET_KEY): the key a single-key service was
already using keeps seeing its data. So this revision reads API_KEYS and SECRET_KEY (or their
NAME_FILE variants) when such rows exist, and stops, changing nothing, without them.

Migrations are frozen history: what it needs from the app (the API_KEYS parsing, the NAME_FILE
source, the owner derivation) is copied below as it stood on 2026-11-27, so that a later
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
from typing import Annotated, Any, Self

import sqlalchemy as sa
from alembic import op
from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

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
        keys = _KeySettings()
    except (ValidationError, _MissingKeysError) as exc:
        reason = f"invalid settings: {_describe(exc)}" if isinstance(exc, ValidationError) else exc
        # PostgreSQL runs the whole migration in one transaction: nothing has changed. The
        # line alembic's env.py prints for the app's ConfigError, without a traceback.
        raise SystemExit(
            "configuration error: migration 0002 gives existing conversations and files to the "
            "first key in API_KEYS, and needs API_KEYS and SECRET_KEY (or API_KEYS_FILE and "
            f"SECRET_KEY_FILE) for that: {reason}"
        ) from None
    return _owner_of(keys.api_keys[0], keys.secret_key)


class _MissingKeysError(Exception):
    """A NAME_FILE setting names a file that cannot be read."""


_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class _ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str | None
    value: SecretStr


def _parse_api_keys(raw: str) -> tuple[_ApiKey, ...]:
    keys = []
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    for position, entry in enumerate(entries, start=1):
        name, separator, value = entry.partition(":")
        if not separator:
            name, value = "", entry
        elif not _KEY_NAME.fullmatch(name):
            raise ValueError(
                f"entry {position}: a key name is 1-64 letters, digits, '_', '.', '@' or '-' "
                "(write each entry as name:key or as a bare key without ':')"
            )
        if not value.strip():
            raise ValueError(f"entry {position} ({name}) has no key after the ':'")
        keys.append(_ApiKey(name=name or None, value=SecretStr(value.strip())))
    values = [key.value.get_secret_value() for key in keys]
    if len(set(values)) != len(values):
        raise ValueError("the same key is listed twice")
    return tuple(keys)


class _FileVariantsSource(PydanticBaseSettingsSource):
    """NAME_FILE for a setting NAME, from the environment or .env (the environment wins)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{field_name.upper()}_FILE"
        env_file = Path(".env")
        dotenv = dotenv_values(env_file) if env_file.is_file() else {}
        path = {**{k: v for k, v in dotenv.items() if v is not None}, **os.environ}.get(variable)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise _MissingKeysError(f"{variable}={path} cannot be read: {exc.strerror}") from None

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class _KeySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    api_keys: Annotated[tuple[_ApiKey, ...], NoDecode]
    secret_key: SecretStr

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = _FileVariantsSource(settings_cls)
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return _parse_api_keys(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _some_key(self) -> Self:
        if not self.api_keys:
            raise ValueError("API_KEYS must hold at least one key")
        return self


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(message if name == "settings" else f"{name}: {message}")
    return "; ".join(problems)


def _owner_of(key: _ApiKey, secret_key: SecretStr) -> str:
    # Rows are stored under this value: the app's owner_of (app.core.security) must agree.
    if key.name is not None:
        return key.name
    digest = hmac.new(
        secret_key.get_secret_value().encode(), key.value.get_secret_value().encode(), "sha256"
    )
    return "key:" + digest.hexdigest()[:32]

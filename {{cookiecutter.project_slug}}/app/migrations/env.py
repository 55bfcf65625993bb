"""Alembic environment: async engine, one advisory lock so concurrent runs migrate once."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.config.errors import ConfigError
from app.config.loading import load_part
from app.config.settings import DatabaseSettings, async_database_url
from app.conversations import models as _conversations  # noqa: F401  (registers tables)
from app.core.db import Base
from app.files import models as _files  # noqa: F401  (registers tables)
from app.runs import models as _runs  # noqa: F401  (registers tables)
from app.spend import models as _spend  # noqa: F401  (registers tables)

# Any constant shared by all migration runs of this service.
MIGRATION_LOCK_ID = 0x6D696772

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """Prefer a URL set by the caller (tests), else DATABASE_URL."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return async_database_url(url)
    return load_part(DatabaseSettings).database_url.get_secret_value()


def run_offline() -> None:
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def migrate(connection: Connection) -> None:
    # Replicas that start together queue on this lock; the later ones find the head reached.
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
    finally:
        await engine.dispose()


try:
    if context.is_offline_mode():
        run_offline()
    else:
        asyncio.run(run_online())
except ConfigError as exc:
    # The same one line as the api gives (app.main.create_app), not a traceback.
    raise SystemExit(f"configuration error: {exc}") from None

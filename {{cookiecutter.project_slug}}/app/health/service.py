"""Dependency checks for /health, each under its own timeout."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.core.resources import Resources
from app.health.schemas import CheckResult


class CheckFailedError(Exception):
    """A dependency answered, but not as it should; the message is safe to show."""


async def timed_check(probe: Callable[[], Awaitable[None]], budget: float) -> CheckResult:
    """Run one probe; report our own words for failures, never exception text or DSNs."""
    started = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(budget):
            await probe()
    except TimeoutError:
        error = f"no answer within {budget:g} s"
    except CheckFailedError as exc:
        error = str(exc)
    except (SQLAlchemyError, RedisError, OSError):
        error = "unreachable"
    latency = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(
        status="disconnected" if error else "connected", latency_ms=latency, error=error
    )


async def check_database(resources: Resources) -> None:
    """Query the database and require the schema to be at the Alembic head."""
    async with resources.engine.connect() as connection:
        try:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except SQLAlchemyError as exc:
            raise CheckFailedError("schema not migrated; run alembic upgrade head") from exc
    if revision != resources.schema_head:
        raise CheckFailedError("schema not at head; run alembic upgrade head")


async def check_redis(resources: Resources) -> None:
    """PING Redis."""
    if not await resources.redis.ping():
        raise CheckFailedError("PING was not answered with PONG")


async def run_checks(resources: Resources, budget: float) -> dict[str, CheckResult]:
    """Run every check concurrently."""
    database, redis = await asyncio.gather(
        timed_check(lambda: check_database(resources), budget),
        timed_check(lambda: check_redis(resources), budget),
    )
    return {"database": database, "redis": redis}

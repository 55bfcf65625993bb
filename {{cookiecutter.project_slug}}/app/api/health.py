"""Health endpoints: /health checks the database and Redis, each under its own timeout;
/health/live only the process."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from app.core.metadata import project_metadata
from app.deps import ResourcesDep, SettingsDep
from app.resources import Resources

CheckStatus = Literal["connected", "disconnected"]


class CheckResult(BaseModel):
    status: CheckStatus
    latency_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["healthy", "unhealthy"]
    database: CheckStatus
    redis: CheckStatus
    version: str
    checks: dict[str, CheckResult]


class Liveness(BaseModel):
    status: Literal["alive"]


class CheckFailedError(Exception):
    """A dependency answered, but not as it should; the message is safe to show."""


# Probes that ran out of time finish their cleanup here, after /health has answered.
_abandoned: set[asyncio.Task[None]] = set()


async def timed_check(probe: Callable[[], Awaitable[None]], budget: float) -> CheckResult:
    """Run one probe; report our own words for failures, never exception text or DSNs."""
    started = time.perf_counter()
    task: asyncio.Task[None] = asyncio.ensure_future(probe())
    done, _ = await asyncio.wait({task}, timeout=budget)
    error = None
    if not done:
        # Do not wait for the cancellation: closing a connection to a stalled server can
        # itself stall, and /health must answer within its budget.
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_forget)
        error = f"no answer within {budget:g} s"
    elif isinstance(exc := task.exception(), CheckFailedError):
        error = str(exc)
    elif isinstance(exc, SQLAlchemyError | RedisError | OSError | TimeoutError):
        error = "unreachable"
    elif exc is not None:
        raise exc
    latency = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(
        status="disconnected" if error else "connected", latency_ms=latency, error=error
    )


def _forget(task: "asyncio.Task[None]") -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def check_database(resources: Resources) -> None:
    """Query the database and require the schema to be at the Alembic head."""
    async with resources.engine.connect() as connection:
        # One statement needs no transaction: in autocommit it is one round trip, where
        # BEGIN and ROLLBACK around it would make three.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except ProgrammingError as exc:  # no such table; a lost connection is "unreachable"
            raise CheckFailedError("schema not migrated; run alembic upgrade head") from exc
    if revision != resources.schema_head:
        raise CheckFailedError("schema not at head; run alembic upgrade head")


async def check_redis(resources: Resources) -> None:
    if not await resources.redis.ping():
        raise CheckFailedError("PING was not answered with PONG")


router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": HealthReport}},
)
async def health(
    resources: ResourcesDep, settings: SettingsDep, response: Response
) -> HealthReport:
    """Check the database and Redis; 503 when any check fails."""
    budget = settings.config.health.timeout_seconds
    database, redis = await asyncio.gather(
        timed_check(lambda: check_database(resources), budget),
        timed_check(lambda: check_redis(resources), budget),
    )
    if redis.status == "disconnected":
        resources.metrics.redis_error("health")
    healthy = database.status == redis.status == "connected"
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthReport(
        status="healthy" if healthy else "unhealthy",
        database=database.status,
        redis=redis.status,
        version=project_metadata()[1],
        checks={"database": database, "redis": redis},
    )


@router.get("/health/live")
async def live() -> Liveness:
    """Answer while the process runs; calls no dependency."""
    return Liveness(status="alive")

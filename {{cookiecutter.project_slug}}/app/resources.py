"""Shared resources, created by the lifespan and closed on shutdown."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskiq_redis import ListQueueBroker

from app.core.config import Settings
from app.core.db import MAX_OVERFLOW, POOL_SIZE, create_engine, create_sessionmaker
from app.core.metrics import Metrics
from app.core.queue import create_broker
from app.core.ratelimit import RateLimiter
from app.llm.base import LLMProvider
from app.llm.factory import create_provider
from app.llm.metered import MeteredProvider
from app.runs.streams import EventStreams

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DB_CONNECT_TIMEOUT_SECONDS = 5.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resources:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: "Redis"
    llm: LLMProvider
    schema_head: str | None
    rate_limiter: RateLimiter
    # Where the api puts background runs for the workers.
    queue: ListQueueBroker
    metrics: Metrics
    # The run event streams open in this process.
    event_streams: EventStreams


def create_redis(url: str, *, timeout: float) -> "Redis":
    """Create the Redis client; short timeouts and one retry so an outage is noticed fast."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        health_check_interval=30,
    )


def migrations_head() -> str | None:
    """Return the newest Alembic revision shipped with this code."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


@asynccontextmanager
async def open_resources(settings: Settings, metrics: Metrics) -> AsyncIterator[Resources]:
    """Create the engine, session factory, Redis pool and LLM client; close them on exit.

    The LLM client and the rate limiter count into `metrics`, which reports the engine's pool.
    """
    engine = create_engine(
        settings.database_url.get_secret_value(), timeout=DB_CONNECT_TIMEOUT_SECONDS
    )
    redis = create_redis(
        settings.redis_url.get_secret_value(), timeout=settings.config.redis.timeout_seconds
    )
    llm = MeteredProvider(create_provider(settings), metrics)
    redis_url = settings.redis_url.get_secret_value()
    queue = create_broker(redis_url, timeout=settings.config.redis.timeout_seconds)
    try:
        limiter = RateLimiter(redis, redis_url, settings.config.rate_limit, metrics)
        await queue.startup()
        with metrics.serving(engine.sync_engine.pool, POOL_SIZE + MAX_OVERFLOW):
            yield Resources(
                engine,
                create_sessionmaker(engine),
                redis,
                llm,
                migrations_head(),
                limiter,
                queue,
                metrics,
                EventStreams(
                    settings.config.worker.max_event_streams,
                    settings.config.worker.max_event_streams_per_key,
                    metrics,
                ),
            )
    finally:
        await queue.shutdown()
        await llm.aclose()
        await redis.aclose()
        await engine.dispose()
        logger.info("resources closed")

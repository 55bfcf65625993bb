"""Shared resources, created by the lifespan and closed on shutdown."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from alembic.script import ScriptDirectory
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskiq_redis import ListQueueBroker

from app.agent.mcp import McpTools, open_mcp_tools
from app.agent.registry import check_approvals
from app.config.sections import AppConfig
from app.config.settings import Settings
from app.core.db import POOL_SIZE, create_engine, create_sessionmaker
from app.core.metrics import Metrics
from app.core.queue import create_broker
from app.core.ratelimit import RateLimiter
from app.core.streams import StreamSlots
from app.llm.base import LLMProvider
from app.llm.factory import create_provider
from app.spend.prices import check_priced

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DB_CONNECT_TIMEOUT_SECONDS = 5.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SharedResources:
    """What the api and the worker both use; the worker opens only these."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: "Redis"
    llm: LLMProvider
    metrics: Metrics
    # The tools of the configured MCP servers, as last listed.
    mcp: McpTools


@dataclass(frozen=True, slots=True)
class Resources(SharedResources):
    """The api's: the shared ones, and what serving requests adds."""

    schema_head: str | None
    rate_limiter: RateLimiter
    # Where the api puts background runs for the workers.
    queue: ListQueueBroker
    # The run event streams open in this process.
    event_streams: StreamSlots
    # The streamed turns (SSE messages, chat completion and AG-UI streams) open in it.
    turn_streams: StreamSlots


def check_config(config: AppConfig) -> None:
    """What config.yaml's models cannot check alone, checked before the api or the worker
    starts (ConfigError): approvals name real tools, budgets in dollars have prices."""
    check_approvals(config.agent)
    check_priced(config)


@asynccontextmanager
async def open_shared_resources(
    settings: Settings, metrics: Metrics, *, pool_size: int = POOL_SIZE
) -> AsyncIterator[SharedResources]:
    """Create the engine, session factory, Redis pool, LLM client (counting into `metrics`,
    which reports the engine's pool of pool_size) and MCP tool listing; close them on exit (a
    dead MCP server is logged, it does not stop start-up)."""
    engine = create_engine(
        settings.database_url.get_secret_value(),
        timeout=DB_CONNECT_TIMEOUT_SECONDS,
        pool_size=pool_size,
    )
    # Short timeouts and one retry, so that an outage is noticed fast.
    timeout = settings.config.redis.timeout_seconds
    redis = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        health_check_interval=30,
    )
    llm = create_provider(settings, metrics)
    try:
        async with open_mcp_tools(settings.config.agent) as mcp:
            with metrics.serving(engine.sync_engine.pool, pool_size):
                yield SharedResources(engine, create_sessionmaker(engine), redis, llm, metrics, mcp)
    finally:
        await llm.aclose()
        await redis.aclose()
        await engine.dispose()
        logger.info("resources closed")


@asynccontextmanager
async def open_resources(settings: Settings, metrics: Metrics) -> AsyncIterator[Resources]:
    """Open the shared resources and the api's own: the rate limiter (counting into
    `metrics`), the queue it sends runs to, and the bounds on its streams."""
    redis_url = settings.redis_url.get_secret_value()
    queue = create_broker(redis_url, timeout=settings.config.redis.timeout_seconds)
    async with open_shared_resources(settings, metrics) as shared:
        try:
            limiter = RateLimiter(shared.redis, redis_url, settings.config.rate_limit, metrics)
            await queue.startup()
            worker, agent = settings.config.worker, settings.config.agent
            yield Resources(
                **{field.name: getattr(shared, field.name) for field in fields(shared)},
                # The newest Alembic revision shipped with this code.
                schema_head=ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head(),
                rate_limiter=limiter,
                queue=queue,
                event_streams=StreamSlots(
                    "event streams",
                    worker.max_event_streams,
                    worker.max_event_streams_per_key,
                    ("event_streams", "key_event_streams"),
                    metrics,
                ),
                turn_streams=StreamSlots(
                    "streamed turns",
                    agent.max_streams,
                    agent.max_streams_per_key,
                    ("turn_streams", "key_turn_streams"),
                    metrics,
                ),
            )
        finally:
            await queue.shutdown()

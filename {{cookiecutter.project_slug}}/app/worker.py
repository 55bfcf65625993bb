"""The worker: `python -m app.worker` executes background runs (`python -m app.alive` is its
healthcheck).

Same image and settings as the api. It takes run ids from the Redis queue (taskiq), keeps
each run's lease while it works, and every `worker.sweep_seconds` retries runs whose worker
died. SIGTERM: runs in progress stop after their current step and go back to the queue.
Its metrics (runs by state, the queue's length, model and tool calls) are served at
http://<metrics.worker_host>:<metrics.worker_port>/metrics.
"""

import asyncio
import contextlib
import logging
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError
from taskiq.api import run_receiver_task

from app import alive
from app.config.errors import ConfigError
from app.config.loading import get_settings
from app.config.sections import MetricsConfig
from app.config.settings import Settings
from app.core.db import autocommit_sessionmaker, worker_pool_size
from app.core.logging import setup_logging
from app.core.memory import freeze_imported
from app.core.metrics import Metrics
from app.core.queue import QUEUE_NAME, TASK_NAME, create_broker
from app.flows.execution import Executor
from app.resources import SharedResources, check_config, open_shared_resources
from app.runs.service import count_by_status
from app.turns import TurnBuilder

logger = logging.getLogger("app.worker")
# Sweeps a healthy worker may miss before its healthcheck fails.
MISSED_SWEEPS = 3


async def serve(settings: Settings) -> None:
    config = settings.config.worker
    metrics = Metrics()
    async with (
        open_shared_resources(
            settings, metrics, pool_size=worker_pool_size(config.concurrency)
        ) as resources,
        _metrics_served(settings.config.metrics, metrics),
    ):
        broker = create_broker(settings.redis_url.get_secret_value(), timeout=None)
        broker.is_worker_process = True
        alone = autocommit_sessionmaker(resources.engine)
        executor = Executor(TurnBuilder.over(settings, resources), broker, alone)

        async def execute_run(run_id: str) -> None:
            """The task the queue's messages name: the id of a queued run."""
            await executor.execute(uuid.UUID(run_id))

        broker.register_task(execute_run, task_name=TASK_NAME)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, executor.stopping.set)
        await broker.startup()
        receiver = asyncio.create_task(
            run_receiver_task(broker, max_async_tasks=config.concurrency, run_startup=False)
        )
        sweeper = asyncio.create_task(_sweep_forever(executor, resources))
        logger.info("worker started", extra={"concurrency": config.concurrency})
        await executor.stopping.wait()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        logger.info("stopping: runs in progress finish their step and go back to the queue")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(executor.idle.wait(), config.visibility_timeout_seconds)
        for task in (receiver, sweeper):
            task.cancel()
        await asyncio.gather(receiver, sweeper, return_exceptions=True)
        await broker.shutdown()
        alive.clear()
        logger.info("worker stopped")


@asynccontextmanager
async def _metrics_served(config: MetricsConfig, metrics: Metrics) -> AsyncIterator[None]:
    """The worker's metrics over HTTP (prometheus_client's server, in a thread of its own)."""
    if not config.enabled:
        yield
        return
    with metrics.served_at(config.worker_host, config.worker_port):
        logger.info("metrics served", extra={"port": config.worker_port})
        yield


async def _sweep_forever(executor: Executor, resources: SharedResources) -> None:
    interval = executor.settings.config.worker.sweep_seconds
    while True:
        try:
            requeued = await executor.sweep()
            await resources.redis.ping()
            if executor.settings.config.metrics.enabled:
                await _report_backlog(resources)
            alive.mark(time.time() + MISSED_SWEEPS * interval)
            if requeued:
                logger.info("sweep re-queued runs", extra={"runs": requeued})
        except Exception as exc:
            # An outage of PostgreSQL or Redis: say so, let the healthcheck notice, go on.
            if isinstance(exc, RedisError):
                resources.metrics.redis_error("sweep")
            logger.exception("sweep failed")
        await asyncio.sleep(interval)


async def _report_backlog(resources: SharedResources) -> None:
    """Runs in each state (PostgreSQL) and run messages waiting (Redis), for the metrics."""
    async with resources.sessionmaker() as session:
        by_state = await count_by_status(session)
    depth = await resources.redis.llen(QUEUE_NAME)
    resources.metrics.run_backlog(by_state, depth)


def main() -> int:
    try:
        settings = get_settings()
        check_config(settings.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.config.logging, None)
    freeze_imported()
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

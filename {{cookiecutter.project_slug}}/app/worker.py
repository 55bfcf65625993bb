"""The worker: `python -m app.worker` executes background runs (`python -m app.alive` is its
healthcheck).

Same image and settings as the api. It takes run ids from the Redis queue (taskiq), keeps
each run's lease while it works, and every `worker.sweep_seconds` retries runs whose worker
died. SIGTERM: runs in progress stop after their current step and go back to the queue.
"""

import asyncio
import contextlib
import logging
import signal
import sys
import time
import uuid

from redis.asyncio import Redis
from taskiq.api import run_receiver_task

from app import alive
from app.core.config import ConfigError, Settings, get_settings
from app.core.logging import setup_logging
from app.core.queue import TASK_NAME, create_broker
from app.resources import open_resources
from app.runs.execution import Executor

logger = logging.getLogger("app.worker")
# Sweeps a healthy worker may miss before its healthcheck fails.
MISSED_SWEEPS = 3


async def serve(settings: Settings) -> None:
    config = settings.config.worker
    async with open_resources(settings) as resources:
        broker = create_broker(settings.redis_url.get_secret_value(), timeout=None)
        broker.is_worker_process = True
        executor = Executor(settings, resources.sessionmaker, resources.llm, broker)

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
        sweeper = asyncio.create_task(_sweep_forever(executor, resources.redis))
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


async def _sweep_forever(executor: Executor, redis: "Redis") -> None:
    interval = executor.settings.config.worker.sweep_seconds
    while True:
        try:
            requeued = await executor.sweep()
            await redis.ping()
            alive.mark(time.time() + MISSED_SWEEPS * interval)
            if requeued:
                logger.info("sweep re-queued runs", extra={"runs": requeued})
        except Exception:
            # An outage of PostgreSQL or Redis: say so, let the healthcheck notice, go on.
            logger.exception("sweep failed")
        await asyncio.sleep(interval)


def main() -> int:
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.config.logging, None)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The worker: `python -m app.worker` executes background runs; `--check` is its healthcheck.

Same image and settings as the api. It takes run ids from the Redis queue (taskiq), keeps
each run's lease while it works, and every `worker.sweep_seconds` retries runs whose worker
died. SIGTERM: runs in progress stop after their current step and go back to the queue.
"""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis
from taskiq.api import run_receiver_task

from app.core.config import ConfigError, Settings, get_settings
from app.core.logging import setup_logging
from app.resources import open_resources
from app.runs.execution import Executor
from app.runs.queue import TASK_NAME, create_broker

logger = logging.getLogger("app.worker")
# Written after every sweep that reached PostgreSQL and Redis: the deadline of the next one.
ALIVE_FILE = Path(tempfile.gettempdir()) / "worker.alive"
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
        ALIVE_FILE.unlink(missing_ok=True)
        logger.info("worker stopped")


async def _sweep_forever(executor: Executor, redis: "Redis") -> None:
    interval = executor.settings.config.worker.sweep_seconds
    while True:
        try:
            requeued = await executor.sweep()
            await redis.ping()
            ALIVE_FILE.write_text(str(time.time() + MISSED_SWEEPS * interval))
            if requeued:
                logger.info("sweep re-queued runs", extra={"runs": requeued})
        except Exception:
            # An outage of PostgreSQL or Redis: say so, let the healthcheck notice, go on.
            logger.exception("sweep failed")
        await asyncio.sleep(interval)


def healthy(now: float | None = None) -> bool:
    """True while the last successful sweep's deadline has not passed."""
    try:
        deadline = float(ALIVE_FILE.read_text())
    except (OSError, ValueError):
        return False
    return (now or time.time()) < deadline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 0 if the worker is alive")
    if parser.parse_args(argv).check:
        return 0 if healthy() else 1
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

"""The Redis queue that wakes workers for background runs (taskiq): the api kicks, workers
receive.

The queue carries only run ids. A run's state lives in PostgreSQL, so a message lost with a
worker (popped, then the worker killed) costs a delay, not the run: the workers' sweep
re-queues runs that nobody took or whose lease ran out (see app/runs/leases.py).
"""

import logging
import uuid

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq_redis import ListQueueBroker

from app.core.metrics import Metrics

logger = logging.getLogger(__name__)
TASK_NAME = "runs.execute"
QUEUE_NAME = "agent:runs"
RECONNECT_MAX_SECONDS = 5.0


def create_broker(redis_url: str, *, timeout: float | None) -> ListQueueBroker:
    """A broker on its own connection pool. The api gives every command a timeout and no
    retry (an outage must not hang a request; the sweep sends the run again). A worker gives
    its reads no timeout (they block until a run arrives) and retries a lost connection with
    a growing pause: without one, the receiver would reconnect in a tight loop.
    """
    if timeout is not None:
        retry = Retry(NoBackoff(), retries=0)
    else:
        retry = Retry(ExponentialBackoff(cap=RECONNECT_MAX_SECONDS, base=0.5), retries=10)
    return ListQueueBroker(
        redis_url,
        queue_name=QUEUE_NAME,
        socket_timeout=timeout,
        socket_connect_timeout=timeout or 5.0,
        retry=retry,
    )


async def enqueue(broker: ListQueueBroker, run_id: uuid.UUID, metrics: Metrics) -> bool:
    """Send a run to the workers; False (and a log line) when Redis cannot be reached: the
    run is already stored as queued, and the workers' sweep sends it again later."""
    kicker: AsyncKicker[[str], None] = AsyncKicker(TASK_NAME, broker, {})
    try:
        await kicker.kiq(str(run_id))
    except (SendTaskError, RedisError):
        metrics.redis_error("enqueue")
        logger.warning("run %s not sent to the queue; the sweep will send it", run_id)
        return False
    return True

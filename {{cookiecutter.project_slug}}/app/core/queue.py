"""The Redis queue that wakes workers for background runs (taskiq): the api kicks, workers
receive.

The queue carries only run ids. A run's state lives in PostgreSQL, so a message lost with a
worker (popped, then the worker killed) costs a delay, not the run: the workers' sweep
re-queues runs that nobody took or whose lease ran out (see app/runs/execution.py).
"""

import uuid

from taskiq.kicker import AsyncKicker
from taskiq_redis import ListQueueBroker

TASK_NAME = "runs.execute"
QUEUE_NAME = "agent:runs"


def create_broker(redis_url: str, *, timeout: float | None) -> ListQueueBroker:
    """A broker on its own connection pool.

    The api gives every command a timeout (an outage must not hang a request); a worker
    gives none to its reads, which block until a run arrives.
    """
    return ListQueueBroker(
        redis_url,
        queue_name=QUEUE_NAME,
        socket_timeout=timeout,
        socket_connect_timeout=timeout or 5.0,
    )


async def enqueue(broker: ListQueueBroker, run_id: uuid.UUID) -> None:
    kicker: AsyncKicker[[str], None] = AsyncKicker(TASK_NAME, broker, {})
    await kicker.kiq(str(run_id))

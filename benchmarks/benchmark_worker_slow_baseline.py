"""The hand-written baseline of benchmarks/benchmark_worker_slow.py: benchmark_worker_baseline's
minimal taskiq worker, its model a slow one over HTTP, and a paced queue filler.

It runs in the generated project's virtual environment, from the project's directory, on the
database the project's own migrations created, started by the benchmark as

    PYTHONPATH=<benchmarks> python -m benchmark_worker_slow_baseline work MODEL_URL
    PYTHONPATH=<benchmarks> python -m benchmark_worker_slow_baseline queue N OWNER CONTENT SECONDS

`work` is benchmark_worker_baseline's worker (the same broker, queue, task name, concurrency,
rows and statements, written with asyncpg one transaction per step), except that each model
step is an unstreamed chat completion from the model at MODEL_URL (OpenAI's wire format, the
conversation's messages and the one tool, through aiohttp with a connection per run), and a run
holds a pooled connection only while it writes, never while it waits on the model (a pool of
POOL_SIZE: at hundreds of runs, one connection each would be more than PostgreSQL's 100).
What it leaves out is what benchmark_worker_baseline's docstring lists (no lease renewal, no
halt check, no approvals, no sweep, no tool registry, no metrics, no logs, no ORM), and also
what the generated provider does around a call: the openai SDK's request building, retries
and response models, the model chain (fallbacks, metrics), spend holds, and every tool but
current_time offered to the model.

`queue` stores N conversations of OWNER as benchmark_worker_baseline's does, then sends their
runs' ids with the generated api's own `enqueue`, evenly spread over SECONDS: runs that arrive
one by one start, and so end, one by one, as real traffic's do.
"""

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from app.core.metrics import Metrics
from app.core.queue import QUEUE_NAME, TASK_NAME, enqueue
from app.llm.base import ChatMessage, Completion, ToolCall, Usage
from benchmark_worker_baseline import (
    LEASE,
    MAX_STEPS,
    MESSAGE,
    QUEUED,
    _assistant,
    _call,
    _event,
    _finish,
    _history,
)
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker

POOL_SIZE = 10
TOOL = {
    "type": "function",
    "function": {
        "name": "current_time",
        "description": "The current date and time in UTC, in ISO 8601.",
        "parameters": {"type": "object", "properties": {}},
    },
}


class SlowWorker:
    def __init__(
        self, pool: asyncpg.Pool, model: aiohttp.ClientSession, url: str, system_prompt: str
    ) -> None:
        self.pool, self.model, self.url = pool, model, f"{url}/chat/completions"
        self.system = [ChatMessage("system", system_prompt)] if system_prompt else []

    async def execute(self, run_id: str) -> None:
        run = uuid.UUID(run_id)
        async with self.pool.acquire() as db, db.transaction():
            claimed = await db.fetchrow(
                "UPDATE runs SET status = 'running', attempts = attempts + 1,"
                " lease_until = clock_timestamp() + $2"
                " WHERE id = $1 AND status = 'queued' RETURNING conversation_id, attempts",
                run,
                LEASE,
            )
            if claimed is None:
                return
            await _event(db, run, "running", {"attempt": claimed["attempts"]})
            history = self.system + await _history(db, claimed["conversation_id"])
        await self._turn(run, claimed["conversation_id"], history)

    async def _turn(self, run: uuid.UUID, conversation: uuid.UUID, history: list[Any]) -> None:
        prompt = completion_tokens = 0
        for _ in range(MAX_STEPS):
            completion = await self._complete(history)
            prompt += completion.usage.prompt_tokens
            completion_tokens += completion.usage.completion_tokens
            history.append(ChatMessage("assistant", completion.content, completion.tool_calls))
            async with self.pool.acquire() as db, db.transaction():
                message = await _assistant(db, run, conversation, completion)
                if not completion.tool_calls:
                    await _finish(db, run, (prompt, completion_tokens), message)
                    return
                for call in completion.tool_calls:
                    await _event(db, run, "tool_call", _call(call))
            for call in completion.tool_calls:
                content = datetime.now(UTC).isoformat(timespec="seconds")
                async with self.pool.acquire() as db, db.transaction():
                    row = (conversation, run, "tool", content, "[]", call.id, None, None)
                    await db.execute(MESSAGE, uuid.uuid4(), *row, datetime.now(UTC))
                    data = {**_call(call), "content": content, "is_error": False}
                    await _event(db, run, "tool_result", data)
                history.append(ChatMessage("tool", content, tool_call_id=call.id))

    async def _complete(self, history: list[ChatMessage]) -> Completion:
        body = {"model": "slow", "messages": [_wire(m) for m in history], "tools": [TOOL]}
        async with self.model.post(self.url, json=body) as response:
            response.raise_for_status()
            answer = await response.json()
        message, usage = answer["choices"][0]["message"], answer["usage"]
        calls = tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in message.get("tool_calls") or ()
        )
        counted = Usage(usage["prompt_tokens"], usage["completion_tokens"])
        return Completion(message.get("content") or "", calls, counted)


def _wire(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    return {"role": message.role, "content": message.content}


async def work(model_url: str) -> None:
    concurrency = int(os.environ["BASELINE_CONCURRENCY"])
    pool = await asyncpg.create_pool(
        os.environ["BASELINE_DATABASE_URL"], min_size=POOL_SIZE, max_size=POOL_SIZE
    )
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as model:
        worker = SlowWorker(pool, model, model_url, os.environ["BASELINE_SYSTEM_PROMPT"])
        broker = ListQueueBroker(os.environ["BASELINE_REDIS_URL"], queue_name=QUEUE_NAME)
        broker.is_worker_process = True

        async def execute_run(run_id: str) -> None:
            await worker.execute(run_id)

        broker.register_task(execute_run, task_name=TASK_NAME)
        await broker.startup()
        print("worker started", file=sys.stderr, flush=True)
        # Stopped by SIGTERM: the benchmark stops it once the queue is drained.
        await run_receiver_task(broker, max_async_tasks=concurrency, run_startup=False)


async def queue(count: int, owner: str, content: str, seconds: float) -> None:
    connection = await asyncpg.connect(os.environ["BASELINE_DATABASE_URL"])
    try:
        runs = [row["id"] for row in await connection.fetch(QUEUED, owner, count, content)]
    finally:
        await connection.close()
    # Named, so that the benchmark leaves this client out of the worker's Redis connections.
    broker = ListQueueBroker(
        os.environ["BASELINE_REDIS_URL"], queue_name=QUEUE_NAME, client_name="bench-filler"
    )
    await broker.startup()
    metrics, start = Metrics(), time.monotonic()
    for index, run in enumerate(runs):
        await asyncio.sleep(start + index * seconds / count - time.monotonic())
        if not await enqueue(broker, run, metrics):
            raise SystemExit("Redis refused a run's message")
    await broker.shutdown()


if __name__ == "__main__":
    if sys.argv[1] == "work":
        asyncio.run(work(sys.argv[2]))
    else:
        asyncio.run(queue(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])))

"""The hand-written baseline of benchmarks/benchmark_worker.py, and the queue filler both sides
read.

It runs in the generated project's virtual environment, from the project's directory, on the
database the project's own migrations created, started by the benchmark as

    PYTHONPATH=<benchmarks> python -m benchmark_worker_baseline work
    PYTHONPATH=<benchmarks> python -m benchmark_worker_baseline queue N OWNER CONTENT

`work` is a minimal taskiq worker: the same broker (taskiq-redis ListQueueBroker), queue and
task name as the generated worker (app/core/queue.py), so the same messages reach it, and the
same concurrency (BASELINE_CONCURRENCY as max_async_tasks). Each run writes the rows the
generated worker writes, with asyncpg directly, one transaction per step as a worker that
resumes after a crash needs: the claim (queued -> running, attempts + 1, a lease) with its
`running` event; each model step's assistant message with its `tool_call` events; each tool's
message with its `tool_result` event; the last step's message with the run's final status,
tokens and `done` event. The model is the generated project's own echo provider
(app.llm.echo.answer_to, the same history) and the tool is current_time's one line.

What it leaves out, compared with the generated worker (app/worker.py, app/runs/): no lease
renewal (neither the check that the claim is still this worker's before each write nor the
renewal loop), no halt check (cancel requested, SIGTERM) before each model call, no approvals
lookup, no sweep of lost or expired runs, no tool registry (argument validation, timeout,
result cut), no attachments in the history, no metrics, no logging, no ORM: one connection
held per run, statements written by hand.

`queue` stores N conversations of OWNER, each with the user's message CONTENT and a queued run
on it, in one INSERT (the rows POST /v1/conversations/{id}/runs stores, without the api), then
sends each run's id with the generated api's own `enqueue` (app.core.queue).
"""

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from app.core.metrics import Metrics
from app.core.queue import QUEUE_NAME, TASK_NAME, create_broker, enqueue
from app.llm.base import ChatMessage, Completion, ToolCall
from app.llm.echo import answer_to
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker

HISTORY_LIMIT = 50
MAX_STEPS = 8
LEASE = timedelta(seconds=60)
MESSAGE = (
    "INSERT INTO messages (id, conversation_id, run_id, role, content, file_ids, tool_calls,"
    " tool_call_id, prompt_tokens, completion_tokens, created_at)"
    " VALUES ($1, $2, $3, $4, $5, '{}', $6, $7, $8, $9, $10)"
)
EVENT = "INSERT INTO run_events (run_id, name, data, created_at) VALUES ($1, $2, $3, $4)"
POOL_CONNECTIONS = 15
QUEUED = """
WITH c AS (
    INSERT INTO conversations (id, owner, created_at)
    SELECT gen_random_uuid(), $1, clock_timestamp() FROM generate_series(1, $2)
    RETURNING id, created_at
), m AS (
    INSERT INTO messages (id, conversation_id, role, content, file_ids, tool_calls, created_at)
    SELECT gen_random_uuid(), id, 'user', $3, '{}', '[]', created_at FROM c
), r AS (
    INSERT INTO runs (id, created_at, owner, conversation_id, status, attempts, queued_at,
                      cancel_requested, prompt_tokens, completion_tokens)
    SELECT gen_random_uuid(), created_at, $1, id, 'queued', 0, created_at, false, 0, 0 FROM c
    RETURNING id, created_at
)
SELECT id FROM r ORDER BY created_at
"""


class Worker:
    def __init__(self, pool: asyncpg.Pool, system_prompt: str) -> None:
        self.pool = pool
        self.system = [ChatMessage("system", system_prompt)] if system_prompt else []

    async def execute(self, run_id: str) -> None:
        run = uuid.UUID(run_id)
        async with self.pool.acquire() as db:
            async with db.transaction():
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
            await self._turn(db, run, claimed["conversation_id"], history)

    async def _turn(
        self, db: asyncpg.Connection, run: uuid.UUID, conversation: uuid.UUID, history: list[Any]
    ) -> None:
        prompt = completion_tokens = 0
        for _ in range(MAX_STEPS):
            completion = answer_to(history)
            prompt += completion.usage.prompt_tokens
            completion_tokens += completion.usage.completion_tokens
            history.append(ChatMessage("assistant", completion.content, completion.tool_calls))
            async with db.transaction():
                message = await _assistant(db, run, conversation, completion)
                if not completion.tool_calls:
                    await _finish(db, run, (prompt, completion_tokens), message)
                    return
                for call in completion.tool_calls:
                    await _event(db, run, "tool_call", _call(call))
            for call in completion.tool_calls:
                content = datetime.now(UTC).isoformat(timespec="seconds")
                async with db.transaction():
                    row = (conversation, run, "tool", content, "[]", call.id, None, None)
                    await db.execute(MESSAGE, uuid.uuid4(), *row, datetime.now(UTC))
                    data = {**_call(call), "content": content, "is_error": False}
                    await _event(db, run, "tool_result", data)
                history.append(ChatMessage("tool", content, tool_call_id=call.id))


async def _history(db: asyncpg.Connection, conversation: uuid.UUID) -> list[ChatMessage]:
    rows = await db.fetch(
        "SELECT role, content, tool_calls, tool_call_id FROM messages"
        " WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        conversation,
        HISTORY_LIMIT,
    )
    return [
        ChatMessage(row["role"], row["content"], _calls(row["tool_calls"]), row["tool_call_id"])
        for row in reversed(rows)
    ]


def _calls(stored: str) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in json.loads(stored))


async def _assistant(
    db: asyncpg.Connection, run: uuid.UUID, conversation: uuid.UUID, completion: Completion
) -> dict[str, Any]:
    """Store one model step's message; return it as the done event shows it."""
    message = {
        "id": str(uuid.uuid4()),
        "role": "assistant",
        "content": completion.content,
        "file_ids": [],
        "tool_calls": [_call(c) for c in completion.tool_calls],
        "tool_call_id": None,
        "usage": {
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
        },
        "created_at": datetime.now(UTC),
    }
    usage = completion.usage
    row = (conversation, run, "assistant", completion.content, json.dumps(message["tool_calls"]))
    await db.execute(
        MESSAGE,
        uuid.UUID(message["id"]),
        *row,
        None,
        usage.prompt_tokens,
        usage.completion_tokens,
        message["created_at"],
    )
    message["created_at"] = message["created_at"].isoformat().replace("+00:00", "Z")
    return message


async def _finish(
    db: asyncpg.Connection, run: uuid.UUID, tokens: tuple[int, int], message: dict[str, Any]
) -> None:
    await db.execute(
        "UPDATE runs SET status = 'succeeded', stop_reason = 'completed', lease_until = NULL,"
        " finished_at = clock_timestamp(), prompt_tokens = prompt_tokens + $2,"
        " completion_tokens = completion_tokens + $3 WHERE id = $1",
        run,
        *tokens,
    )
    usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]}
    data = {"status": "succeeded", "stop_reason": "completed", "usage": usage}
    await _event(db, run, "done", {**data, "assistant_message": message})


async def _event(db: asyncpg.Connection, run: uuid.UUID, name: str, data: dict[str, Any]) -> None:
    await db.execute(EVENT, run, name, json.dumps(data), datetime.now(UTC))


def _call(call: ToolCall) -> dict[str, str]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


async def work() -> None:
    concurrency = int(os.environ["BASELINE_CONCURRENCY"])
    # A connection per run in flight, up to the 15 of the generated worker's pool at its
    # default concurrency (100 would be all of PostgreSQL's default max_connections).
    connections = min(concurrency, POOL_CONNECTIONS)
    pool = await asyncpg.create_pool(
        os.environ["BASELINE_DATABASE_URL"], min_size=connections, max_size=connections
    )
    worker = Worker(pool, os.environ["BASELINE_SYSTEM_PROMPT"])
    broker = ListQueueBroker(os.environ["BASELINE_REDIS_URL"], queue_name=QUEUE_NAME)
    broker.is_worker_process = True

    async def execute_run(run_id: str) -> None:
        await worker.execute(run_id)

    broker.register_task(execute_run, task_name=TASK_NAME)
    await broker.startup()
    # Stopped by SIGTERM: the benchmark stops it once the queue is drained.
    await run_receiver_task(broker, max_async_tasks=concurrency, run_startup=False)


async def queue(count: int, owner: str, content: str) -> None:
    connection = await asyncpg.connect(os.environ["BASELINE_DATABASE_URL"])
    try:
        runs = [row["id"] for row in await connection.fetch(QUEUED, owner, count, content)]
    finally:
        await connection.close()
    broker = create_broker(os.environ["BASELINE_REDIS_URL"], timeout=5.0)
    await broker.startup()
    metrics = Metrics()
    for start in range(0, len(runs), 100):
        sent = await asyncio.gather(
            *(enqueue(broker, r, metrics) for r in runs[start : start + 100])
        )
        if not all(sent):
            raise SystemExit("Redis refused a run's message")
    await broker.shutdown()


if __name__ == "__main__":
    if sys.argv[1] == "work":
        asyncio.run(work())
    else:
        asyncio.run(queue(int(sys.argv[2]), sys.argv[3], sys.argv[4]))

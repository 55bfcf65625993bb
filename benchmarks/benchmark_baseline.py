"""The hand-written baseline of benchmarks/benchmark_api.py: the generated api's work with nothing
in between (asyncpg and redis-py directly; no auth layer, no ORM, no logging middleware).

It runs in the generated project's virtual environment, on the database the project's own
migrations created, started by the benchmark as `uvicorn --factory benchmark_baseline:create_app`.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from redis.asyncio import Redis

OWNER = "baseline"
HISTORY_LIMIT = 50


def create_app() -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            os.environ["BASELINE_DATABASE_URL"], min_size=1, max_size=10
        )
        state["redis"] = Redis.from_url(os.environ["BASELINE_REDIS_URL"])
        yield
        await state["redis"].aclose()
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        async def revision() -> str:
            return str(await state["pool"].fetchval("SELECT version_num FROM alembic_version"))

        version, _ = await asyncio.gather(revision(), state["redis"].ping())
        return {"status": "healthy", "database": "connected", "redis": "connected", "rev": version}

    @app.get("/constant")
    async def constant() -> dict[str, str]:
        return {"status": "alive"}

    @app.post("/v1/conversations", status_code=201)
    async def create_conversation(request: Request) -> dict[str, Any]:
        body = await request.json()
        row = await state["pool"].fetchrow(
            "INSERT INTO conversations (id, owner, title, created_at) VALUES ($1, $2, $3, $4)"
            " RETURNING id, title, created_at",
            uuid.uuid4(),
            OWNER,
            body.get("title"),
            datetime.now(UTC),
        )
        return {"id": str(row["id"]), "title": row["title"], "created_at": row["created_at"]}

    @app.post("/v1/conversations/{conversation_id}/messages", status_code=201)
    async def send_message(conversation_id: uuid.UUID, request: Request) -> dict[str, Any]:
        content = (await request.json())["content"]
        async with state["pool"].acquire() as connection, connection.transaction():
            found = await connection.fetchval(
                "SELECT 1 FROM conversations WHERE id = $1 AND owner = $2", conversation_id, OWNER
            )
            if found is None:
                raise HTTPException(404, "conversation not found")
            history = await connection.fetch(
                "SELECT role, content FROM messages WHERE conversation_id = $1"
                " ORDER BY created_at DESC LIMIT $2",
                conversation_id,
                HISTORY_LIMIT,
            )
            # The echo provider's work: answer with the user's words, count them as tokens.
            reply = f"echo: {content}"
            prompt_tokens = sum(len(m["content"].split()) for m in history) + len(content.split())
            rows = [
                await insert_message(connection, conversation_id, "user", content),
                await insert_message(
                    connection,
                    conversation_id,
                    "assistant",
                    reply,
                    (prompt_tokens, len(reply.split())),
                ),
            ]
        return {
            "user_message": dict(rows[0]),
            "assistant_message": dict(rows[1]),
            "stop_reason": "completed",
        }

    return app


async def insert_message(
    connection: asyncpg.Connection,
    conversation_id: uuid.UUID,
    role: str,
    text: str,
    tokens: tuple[int, int] | None = None,
) -> asyncpg.Record:
    """Store one message (with its prompt and completion tokens, for the model's)."""
    prompt_tokens, completion_tokens = tokens if tokens is not None else (None, None)
    return await connection.fetchrow(
        "INSERT INTO messages (id, conversation_id, role, content, file_ids,"
        " tool_calls, prompt_tokens, completion_tokens, created_at)"
        " VALUES ($1, $2, $3, $4, '{}', '[]', $5, $6, $7)"
        " RETURNING id, role, content, created_at",
        uuid.uuid4(),
        conversation_id,
        role,
        text,
        prompt_tokens,
        completion_tokens,
        datetime.now(UTC),
    )

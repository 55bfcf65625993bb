"""The hand-written relay of benchmarks/benchmark_streams.py: the generated api's streamed turn with
nothing in between.

`POST /relay/{conversation_id}` with `{"content": ...}` checks the conversation exists, stores
the user's message and reads the history (asyncpg, one transaction, as the baseline's turn),
streams the model's reply through httpx as `token` events, stores the reply and ends with a
`done` event: the same rows and the same stream format as the api's
`POST /v1/conversations/{id}/messages` with `Accept: text/event-stream`. No auth, no rate
limit, no ORM, no stream bounds, no logging middleware. It runs in the generated project's
virtual environment, started as `uvicorn --factory benchmark_streams_relay:create_app`.
"""

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from benchmark_baseline import HISTORY_LIMIT, insert_message
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

SYSTEM_PROMPT = "You are a helpful assistant."


def create_app() -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            os.environ["BASELINE_DATABASE_URL"], min_size=1, max_size=15
        )
        # No pool limit: the relay holds as many model streams as it has clients.
        state["model"] = httpx.AsyncClient(
            base_url=os.environ["BASELINE_MODEL_URL"],
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            timeout=60,
        )
        yield
        await state["model"].aclose()
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/relay/{conversation_id}")
    async def relay(conversation_id: uuid.UUID, request: Request) -> StreamingResponse:
        content = (await request.json())["content"]
        async with state["pool"].acquire() as connection, connection.transaction():
            found = await connection.fetchval(
                "SELECT 1 FROM conversations WHERE id = $1", conversation_id
            )
            if found is None:
                raise HTTPException(404, "conversation not found")
            await insert_message(connection, conversation_id, "user", content)
            history = await connection.fetch(
                "SELECT role, content FROM messages WHERE conversation_id = $1"
                " ORDER BY created_at DESC LIMIT $2",
                conversation_id,
                HISTORY_LIMIT,
            )
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        messages += [{"role": m["role"], "content": m["content"]} for m in reversed(history)]
        return StreamingResponse(
            _relayed(conversation_id, messages), media_type="text/event-stream"
        )

    async def _relayed(
        conversation_id: uuid.UUID, messages: list[dict[str, str]]
    ) -> AsyncIterator[str]:
        parts: list[str] = []
        body = {"model": "slow", "messages": messages, "stream": True}
        async with state["model"].stream("POST", "/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk["choices"] and (token := chunk["choices"][0]["delta"].get("content")):
                    parts.append(token)
                    yield f"event: token\ndata: {json.dumps({'content': token})}\n\n"
        reply = "".join(parts)
        async with state["pool"].acquire() as connection:
            row = await insert_message(
                connection, conversation_id, "assistant", reply, (1, len(parts))
            )
        done = {"assistant_message": {**dict(row), "id": str(row["id"])}}
        yield f"event: done\ndata: {json.dumps(done, default=str)}\n\n"

    return app

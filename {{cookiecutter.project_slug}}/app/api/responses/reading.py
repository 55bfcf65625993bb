"""Reading a response: what its run stored, rebuilt (events.py) now, once the run has settled,
or as a stream of its events that follows the run as it writes them."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import ServerSentEvent

from app.api import sse
from app.api.responses.events import Replay, Stored
from app.conversations.models import Message
from app.llm.base import ToolCall
from app.runs.models import Run

DONE = "[DONE]"


async def stored(session: AsyncSession, run: Run) -> Stored:
    """What the run has stored so far, read in the caller's session."""
    messages = await session.scalars(
        select(Message).where(Message.run_id == run.id).order_by(Message.created_at, Message.id)
    )
    inherited: dict[str, ToolCall] = {}
    if run.previous_run_id is not None:
        before = await session.scalar(
            select(Message)
            .where(Message.run_id == run.previous_run_id, Message.role == "assistant")
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
        inherited = {call.id: call for call in before.calls} if before else {}
    return Stored(run, list(messages), inherited)


async def replayed(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, model: str
) -> Replay:
    """The response as stored now, read with a session of its own."""
    async with sessionmaker() as session:
        run = await session.get_one(Run, run_id)
        return Replay.of(await stored(session, run), model)


async def settled(
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    model: str,
    *,
    seconds: float,
    poll_seconds: float,
) -> Replay:
    """The response once its run has settled, or as it is after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        replay = await replayed(sessionmaker, run_id, model)
        if replay.settled or time.monotonic() >= deadline:
            return replay
        await asyncio.sleep(poll_seconds)


async def follow(
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    model: str,
    *,
    after: int,
    seconds: float,
    poll_seconds: float,
) -> AsyncIterator[ServerSentEvent]:
    """The response's events after sequence number `after`, as its run writes them, then the
    specification's `[DONE]`; a stream cut by `seconds` ends without it (resume it with
    starting_after). Each read takes a connection and gives it back before the next poll."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        replay = await replayed(sessionmaker, run_id, model)
        for event in replay.events[after + 1 :]:
            yield sse.encode(event["type"], event)
            after = event["sequence_number"]
        if replay.settled:
            yield ServerSentEvent(data=DONE, sep=sse.LINE_END)
            return
        await asyncio.sleep(poll_seconds)

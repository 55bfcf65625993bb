"""The bound on streamed turns open at once, shared by the SSE messages path, chat
completion streams and AG-UI runs: past a key's share 429, past the process's 503, both
with Retry-After and nothing stored; a stream's slot comes back however it ends.

The turns held open wait in a tool at a gate the test opens, so the streams overlap for
certain, not by timing.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from pydantic import BaseModel
from redis.asyncio import Redis

from app.agent import registry
from app.agent.tools import ToolContext, tool
from tests.conftest import make_settings, new_conversation_id, serve
from tests.metrics import admission_refusals, scrape

# Keys of this module's own: its turns are committed (below), and no other test may see them.
MINE, OTHER = f"streams-{uuid.uuid4().hex}", f"streams-{uuid.uuid4().hex}"
THEIRS = {"Authorization": f"Bearer {OTHER}"}
STREAMED = {"Accept": "text/event-stream"}
KEY_FULL = "too many streamed turns of this key open (limit 2); retry shortly"


class Nothing(BaseModel):
    pass


@dataclass
class Gate:
    entered: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self, client: AsyncClient, count: int, **request: Any) -> list[Any]:
        """Start count streamed completions and return once each waits at the gate."""
        held = [
            asyncio.create_task(_chat("/tool wait_at_gate", client, **request))
            for _ in range(count)
        ]
        async with asyncio.timeout(10):  # a stream refused by mistake fails, not hangs
            for _ in held:
                await self.entered.acquire()
        return held


@pytest.fixture
async def client(
    tmp_path: Path, migrated: str, redis_url: str, config_overrides: dict[str, Any], redis: Redis
) -> AsyncIterator[AsyncClient]:
    """The api on its own engine, its writes committed: the overlapping turns write their
    steps and ledger rows at once, which sessions sharing the one connection of a
    rolled-back test transaction cannot do."""
    settings = make_settings(
        tmp_path, migrated, redis_url, api_keys=f"{MINE},{OTHER}", **config_overrides
    )
    async for client in serve(settings, None, api_key=MINE):
        yield client


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    gate = Gate()

    @tool
    async def wait_at_gate(args: Nothing, context: ToolContext) -> str:
        """Wait until the test opens the gate."""
        gate.entered.release()
        await gate.opened.wait()
        return "through"

    monkeypatch.setattr(registry, "TOOLS", [*registry.TOOLS, wait_at_gate])
    return gate


async def _chat(content: str, client: AsyncClient, stream: bool = True, **request: Any) -> Response:
    body = {"model": "agent", "messages": [{"role": "user", "content": content}], "stream": stream}
    return await client.post("/v1/chat/completions", json=body, **request)


async def _message(client: AsyncClient, conversation: str, content: str) -> Response:
    url = f"/v1/conversations/{conversation}/messages"
    return await client.post(url, json={"content": content}, headers=STREAMED)


async def _agui(client: AsyncClient, conversation: str) -> Response:
    run = {
        "threadId": conversation,
        "runId": "r1",
        "messages": [{"id": "u1", "role": "user", "content": "hi"}],
    }
    return await client.post(f"/v1/conversations/{conversation}/agui", json=run)


@pytest.mark.parametrize("config_overrides", [{"agent": {"max_streams_per_key": 2}}])
async def test_a_keys_streamed_turns_past_its_share_get_429_and_store_nothing(
    client: AsyncClient, gate: Gate
) -> None:
    conversation = await new_conversation_id(client)
    held = await gate.hold(client, 2)

    refused = [
        await _chat("hi", client),
        await _message(client, conversation, "refused"),
        await _agui(client, conversation),
    ]
    theirs = await _chat("hi", client, headers=THEIRS)
    gate.opened.set()
    ended = await asyncio.gather(*held)
    after = await _message(client, conversation, "let in")

    assert [r.status_code for r in refused] == [429, 429, 429]
    assert {r.headers["Retry-After"] for r in refused} == {"1"}
    # A chat completion's refusal in OpenAI's shape, the others in FastAPI's.
    chat = {"message": KEY_FULL, "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    assert refused[0].json()["error"] == chat
    assert {r.json()["detail"] for r in refused[1:]} == {KEY_FULL}
    assert theirs.status_code == 200
    assert [r.text.rstrip().endswith("data: [DONE]") for r in ended] == [True, True]
    assert after.status_code == 200  # the streams that ended gave their slots back
    stored = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [m["content"] for m in stored if m["role"] == "user"] == ["let in"]
    assert admission_refusals(await scrape(client)) == {"key_turn_streams": 3}


@pytest.mark.parametrize(
    "config_overrides", [{"agent": {"max_streams": 2, "max_streams_per_key": 2}}]
)
async def test_streamed_turns_past_the_process_bound_get_503(
    client: AsyncClient, gate: Gate
) -> None:
    held = [*await gate.hold(client, 1), *await gate.hold(client, 1, headers=THEIRS)]

    refused = await _chat("hi", client, headers=THEIRS)
    not_streamed = await _chat("hi", client, stream=False, headers=THEIRS)
    gate.opened.set()
    await asyncio.gather(*held)

    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "1")
    assert refused.json()["error"]["message"] == (
        "too many streamed turns open (limit 2); retry shortly"
    )
    assert refused.json()["error"]["code"] == "overloaded"
    assert not_streamed.status_code == 200
    assert admission_refusals(await scrape(client)) == {"turn_streams": 1}


@pytest.mark.parametrize("config_overrides", [{"agent": {"max_streams_per_key": 1}}])
async def test_a_stream_whose_client_goes_away_gives_its_slot_back(
    client: AsyncClient, gate: Gate
) -> None:
    (held,) = await gate.hold(client, 1)
    full = await _chat("hi", client)

    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    after = await _chat("hi", client)

    assert (full.status_code, after.status_code) == (429, 200)


@pytest.mark.parametrize(
    "config_overrides",
    [{"requests": {"max_bodies_in_flight": 1}, "agent": {"max_streams_per_key": 2}}],
)
async def test_streamed_turns_hold_no_body_slot_once_they_answer(
    client: AsyncClient, gate: Gate
) -> None:
    # The body bound counts bodies until their answer starts; a stream is bounded by its own
    # slots. Both streams open, one after the other, although one body may be in flight.
    held = [*await gate.hold(client, 1), *await gate.hold(client, 1)]

    created = await client.post("/v1/conversations", json={"title": "while streaming"})
    gate.opened.set()
    ended = await asyncio.gather(*held)

    assert created.status_code == 201
    assert [r.status_code for r in ended] == [200, 200]

"""A run whose worker dies at any instant between two of its writes resumes without doing
anything twice: no model call, no tool call, no stored message, no counted token.

Not by timing: the worker's sessions raise Killed right after their k-th commit, for every k
an undisturbed run has, so the run is cut once at each boundary between two writes. Killed
is a BaseException, as a SIGKILL is beyond any handler: no `except Exception` of the code
under test catches it, and nothing of that worker runs after it.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.agent import registry
from app.agent.builtin import NoArguments
from app.agent.mcp import McpTools
from app.agent.tools import ToolContext, tool
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.core.queue import create_broker
from app.flows.execution import Executor
from app.llm.base import ChatMessage, Completion, OutputFormat, ToolSpec
from app.llm.echo import EchoProvider
from app.turns import TurnBuilder
from tests.conftest import start_run
from tests.sse import events

# Three model calls and two tool calls when nothing goes wrong.
MESSAGE = "what time is it?\n/tool current_time\n/tool current_time {}"


class Killed(BaseException):
    """The worker is gone."""


@dataclass
class KillSwitch:
    """Counts the worker's commits and kills it right after commit number `at`."""

    at: int | None = None
    commits: int = 0

    def commit(self) -> None:
        self.commits += 1
        if self.commits == self.at:
            raise Killed(f"after commit {self.at}")


@dataclass
class CountingEcho:
    """The echo model, counting the calls it answers."""

    name = "echo"
    model = "echo"
    calls: list[list[ChatMessage]] = field(default_factory=list)

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion:
        self.calls.append(list(messages))
        return await EchoProvider().complete(messages, tools, output)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        self.calls.append(list(messages))
        async for piece in EchoProvider().stream(messages, tools, output):
            yield piece

    async def aclose(self) -> None:
        return None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID | None]:
    """current_time, counting its calls: each answer names how many calls its
    conversation has had, so a call made twice shows in what is stored."""
    calls: list[uuid.UUID | None] = []

    @tool
    async def current_time(args: NoArguments, context: ToolContext) -> str:
        """The current time (here: which call of this conversation this is)."""
        calls.append(context.conversation_id)
        return f"call {calls.count(context.conversation_id)}"

    tools = [current_time if t.name == "current_time" else t for t in registry.TOOLS]
    monkeypatch.setattr(registry, "TOOLS", tools)
    return calls


@dataclass
class Worker:
    """In-process workers on one kill switch: each `execute` is a new worker process."""

    settings: Settings
    connection: AsyncConnection
    switch: KillSwitch
    model: CountingEcho

    async def execute(self, run_id: uuid.UUID) -> None:
        switch = self.switch

        class Mortal(AsyncSession):
            async def commit(self) -> None:
                await super().commit()
                switch.commit()

        maker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            bind=self.connection,
            class_=Mortal,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        broker = create_broker(self.settings.redis_url.get_secret_value(), timeout=1.0)
        await broker.startup()
        mcp = McpTools((), self.settings.config.agent)
        executor = Executor(TurnBuilder(self.settings, maker, self.model, Metrics(), mcp), broker)
        try:
            if self.switch.commits:
                # The dead worker's lease runs out; the sweep of a live one queues the run.
                await self._expire(run_id)
                await executor.sweep()
            await executor.execute(run_id)
        except Killed:
            pass
        finally:
            await broker.shutdown()

    async def _expire(self, run_id: uuid.UUID) -> None:
        await self.connection.execute(
            text(
                "UPDATE runs SET lease_until = clock_timestamp() - interval '1 s' "
                "WHERE id = :id AND status = 'running'"
            ),
            {"id": run_id},
        )


async def _drive(client: AsyncClient, worker: Worker) -> dict[str, Any]:
    """Start a run and see it through, as workers and a person would: execute it while it is
    queued or running, approve what it waits on; return the run and its conversation."""
    recorded = await _recorded_calls(client)
    run = await start_run(client, MESSAGE)
    for _ in range(10):
        found = (await client.get(f"/v1/runs/{run['id']}")).json()
        if found["status"] in {"succeeded", "failed", "cancelled"}:
            break
        if found["status"] == "awaiting_approval":
            pending = found["pending_approvals"]
            decisions = [{"tool_call_id": c["id"], "approved": True} for c in pending]
            response = await client.post(
                f"/v1/runs/{run['id']}/approvals", json={"decisions": decisions}
            )
            assert response.status_code == 200, response.text
        else:
            await worker.execute(uuid.UUID(run["id"]))
    conversation = await client.get(f"/v1/conversations/{run['conversation_id']}")
    followed = await client.get(f"/v1/runs/{run['id']}/events")
    return {
        "run": found,
        "messages": conversation.json()["messages"],
        "events": [name for name, _ in events(followed.text)],
        "recorded": await _recorded_calls(client) - recorded,
    }


async def _recorded_calls(client: AsyncClient) -> int:
    """The model calls in the caller's ledger since yesterday (a run may cross midnight)."""
    days = (await client.get("/v1/usage", params={"days": "2"})).json()["days"]
    return sum(int(day["calls"]) for day in days)


def _seen(outcome: dict[str, Any]) -> dict[str, Any]:
    """What a user would compare: the run's end and usage, every stored message, and the
    events a client follows (but the claims: a resumed run is claimed again)."""
    run = outcome["run"]
    return {
        # Every model call whose answer the run kept is in the ledger, once.
        "recorded": outcome["recorded"],
        "events": [name for name in outcome["events"] if name not in {"running", "retrying"}],
        "status": run["status"],
        "stop_reason": run["stop_reason"],
        "usage": run["usage"],
        "messages": [
            (m["role"], m["content"], [c["id"] for c in m["tool_calls"]], m["tool_call_id"])
            for m in outcome["messages"]
        ],
    }


# The test makes more requests in a minute than the shipped rate limit lets one key make.
UNLIMITED = {"rate_limit": {"requests": 100_000}}


@pytest.mark.parametrize(
    "config_overrides",
    [
        UNLIMITED,
        # The answer is the last step the run may take: it still ends completed.
        {**UNLIMITED, "agent": {"max_steps": 3}},
        {**UNLIMITED, "agent": {"require_approval": ["current_time"]}},
    ],
    ids=["tools", "answer-at-max-steps", "approvals"],
)
async def test_a_run_killed_between_any_two_writes_resumes_doing_nothing_twice(
    client: AsyncClient,
    settings: Settings,
    connection: AsyncConnection,
    clock: list[uuid.UUID | None],
) -> None:
    whole = Worker(settings, connection, KillSwitch(), CountingEcho())
    undisturbed = _seen(await _drive(client, whole))
    writes = whole.switch.commits
    assert (len(whole.model.calls), len(clock)) == (3, 2)
    assert (undisturbed["status"], undisturbed["stop_reason"]) == ("succeeded", "completed")
    assert len(undisturbed["messages"]) == 6
    assert undisturbed["recorded"] == 3

    for at in range(1, writes):
        clock.clear()
        worker = Worker(settings, connection, KillSwitch(at=at), CountingEcho())

        resumed = _seen(await _drive(client, worker))

        cut = f"killed after write {at} of {writes}"
        assert worker.switch.commits > at, cut
        assert resumed == undisturbed, cut
        assert (len(worker.model.calls), len(clock)) == (3, 2), cut

"""Background runs: queued by the api, executed by a worker's Executor (here in-process, on the
test's database and Redis), followed through events, cancelled, retried after a lost worker."""

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent import registry
from app.agent.tools import ToolContext, ToolResult, tool
from app.core.queue import QUEUE_NAME
from app.flows.execution import Executor
from app.llm.base import ChatMessage, Completion, ToolCall
from app.llm.echo import EchoProvider
from app.runs.models import Run
from app.runs.recorder import LeaseLostError, RunRecorder
from tests.conftest import OTHER_API_KEY, new_conversation_id, start_run
from tests.sse import events

AS_OTHER = {"Authorization": f"Bearer {OTHER_API_KEY}"}


class Nothing(BaseModel):
    pass


async def _messages(client: AsyncClient, run: dict[str, Any]) -> list[dict[str, Any]]:
    detail = (await client.get(f"/v1/conversations/{run['conversation_id']}")).json()
    messages: list[dict[str, Any]] = detail["messages"]
    return messages


async def test_a_run_is_queued_then_executed_by_a_worker(
    client: AsyncClient, executor: Executor, redis: Redis
) -> None:
    run = await start_run(client, "time?\n/tool current_time")
    queued = await redis.llen(QUEUE_NAME)

    await executor.execute(uuid.UUID(run["id"]))
    finished = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert (run["status"], queued) == ("queued", 1)
    assert (finished["status"], finished["stop_reason"], finished["attempts"]) == (
        "succeeded",
        "completed",
        1,
    )
    assert finished["usage"]["prompt_tokens"] > 0
    roles = [m["role"] for m in await _messages(client, run)]
    assert roles == ["user", "assistant", "tool", "assistant"]


async def test_events_can_be_followed_and_resumed(client: AsyncClient, executor: Executor) -> None:
    run = await start_run(client, "time?\n/tool current_time")
    await executor.execute(uuid.UUID(run["id"]))
    url = f"/v1/runs/{run['id']}/events"

    whole = await client.get(url)
    blocks = [b for b in whole.text.strip().split("\n\n") if b.startswith("id: ")]
    ids = [int(b.split("\n", 1)[0].removeprefix("id: ")) for b in blocks]
    resumed = await client.get(url, headers={"Last-Event-ID": str(ids[1])})

    names = [name for name, _ in events(whole.text)]
    assert names == ["running", "tool_call", "tool_result", "done"]
    assert ids == sorted(ids)
    assert [name for name, _ in events(resumed.text)] == ["tool_result", "done"]
    done = events(whole.text)[-1][1]
    assert done["status"] == "succeeded"
    assert done["assistant_message"]["content"].endswith(
        "current_time: " + events(whole.text)[2][1]["content"]
    )


async def test_a_message_and_a_run_stream_their_tool_events_alike(
    client: AsyncClient, executor: Executor
) -> None:
    """A client reading both streams handles one shape of tool_call and of tool_result."""
    conversation = await new_conversation_id(client)
    message = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "time?\n/tool current_time"},
        headers={"Accept": "text/event-stream"},
    )
    run = await start_run(client, "time?\n/tool current_time")
    await executor.execute(uuid.UUID(run["id"]))
    followed = await client.get(f"/v1/runs/{run['id']}/events")

    def tool_events(body: str) -> dict[str, dict[str, Any]]:
        return {n: data for n, data in events(body) if n in {"tool_call", "tool_result"}}

    streamed, stored = tool_events(message.text), tool_events(followed.text)
    assert {n: set(data) for n, data in streamed.items()} == {
        "tool_call": {"id", "name", "arguments"},
        "tool_result": {"tool_call_id", "name", "content", "is_error"},
    }
    assert {n: set(data) for n, data in stored.items()} == {
        n: set(data) for n, data in streamed.items()
    }
    for found in (streamed, stored):
        assert found["tool_result"]["tool_call_id"] == found["tool_call"]["id"]
        assert found["tool_call"]["name"] == found["tool_result"]["name"] == "current_time"


async def test_runs_of_one_key_are_invisible_to_another(
    client: AsyncClient, executor: Executor
) -> None:
    run = await start_run(client, "mine")
    unknown = str(uuid.uuid4())

    foreign = [
        await client.get(f"/v1/runs/{run['id']}", headers=AS_OTHER),
        await client.get(f"/v1/runs/{run['id']}/events", headers=AS_OTHER),
        await client.post(f"/v1/runs/{run['id']}/cancel", headers=AS_OTHER),
        await client.post(
            f"/v1/conversations/{run['conversation_id']}/runs",
            json={"content": "into yours"},
            headers=AS_OTHER,
        ),
    ]
    never = await client.get(f"/v1/runs/{unknown}", headers=AS_OTHER)

    assert [r.status_code for r in foreign] == [404] * 4
    assert foreign[0].json()["detail"].replace(run["id"], unknown) == never.json()["detail"]
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["status"] == "queued"


async def test_a_queued_run_cancelled_is_never_executed(
    client: AsyncClient, executor: Executor
) -> None:
    run = await start_run(client, "never mind")

    cancelled = (await client.post(f"/v1/runs/{run['id']}/cancel")).json()
    await executor.execute(uuid.UUID(run["id"]))

    assert (cancelled["status"], cancelled["stop_reason"]) == ("cancelled", "cancelled")
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["attempts"] == 0
    assert [m["role"] for m in await _messages(client, run)] == ["user"]


async def test_a_running_run_cancelled_stops_before_its_next_model_call(
    client: AsyncClient,
    executor: Executor,
    maker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @tool
    async def cancel_me(args: Nothing, context: ToolContext) -> str:
        """Cancel this conversation's run, as a client would meanwhile."""
        async with maker() as session:
            await session.execute(
                update(Run)
                .where(Run.conversation_id == context.conversation_id)
                .values(cancel_requested=True)
            )
            await session.commit()
        return "asked"

    monkeypatch.setattr(registry, "TOOLS", [*registry.TOOLS, cancel_me])
    run = await start_run(client, "go\n/tool cancel_me\n/tool current_time")

    await executor.execute(uuid.UUID(run["id"]))
    finished = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert (finished["status"], finished["stop_reason"]) == ("cancelled", "cancelled")
    assert [m["role"] for m in await _messages(client, run)] == ["user", "assistant", "tool"]


async def _expire(maker: async_sessionmaker[AsyncSession], run_id: str) -> None:
    async with maker() as session:
        await session.execute(
            text("UPDATE runs SET lease_until = clock_timestamp() - interval '1 s' WHERE id = :id"),
            {"id": run_id},
        )
        await session.commit()


async def test_a_run_whose_worker_died_mid_step_is_retried_without_repeating_a_step(
    client: AsyncClient,
    executor: Executor,
    maker: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    run = await start_run(client, "time?\n/tool current_time")
    run_id = uuid.UUID(run["id"])
    # Worker A claims the run and stores its first step (the tool call), then dies.
    dead = await _claimed(executor, maker, run_id)
    completion = await _echoed(client, executor, run)
    await dead.step(completion)

    requeued = await _taken_back(executor, maker, redis, run)
    await executor.execute(run_id)
    finished = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert requeued == 1
    assert await redis.llen(QUEUE_NAME) == 1
    assert (finished["status"], finished["attempts"]) == ("succeeded", 2)
    messages = await _messages(client, run)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["id"] == messages[2]["tool_call_id"]
    with pytest.raises(LeaseLostError):
        await dead.step(completion)


async def test_a_tool_result_is_stored_only_while_the_claim_holds(
    client: AsyncClient,
    executor: Executor,
    maker: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    run = await start_run(client, "time?\n/tool current_time")
    run_id = uuid.UUID(run["id"])
    # Worker A stores the step asking for the tool and gets its result; before it stores the
    # result (with its next model call's check), the run is taken from it.
    late = await _claimed(executor, maker, run_id)
    completion = await _echoed(client, executor, run)
    await late.step(completion)
    [call] = completion.tool_calls
    await late.result(call, ToolResult("from the worker that lost the run"))
    await _taken_back(executor, maker, redis, run)

    with pytest.raises(LeaseLostError):
        await late.halt([], [])
    stored_then = await _messages(client, run)
    await executor.execute(run_id)
    messages = await _messages(client, run)

    assert [m["role"] for m in stored_then] == ["user", "assistant"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert "lost the run" not in messages[2]["content"]
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["status"] == "succeeded"


async def test_a_result_is_stored_before_another_call_of_its_step_runs(
    client: AsyncClient, executor: Executor, maker: async_sessionmaker[AsyncSession]
) -> None:
    run = await start_run(client, "two calls in one step")
    recorder = await _claimed(executor, maker, uuid.UUID(run["id"]))
    first, second = ToolCall("a", "current_time", "{}"), ToolCall("b", "current_time", "{}")
    await recorder.step(Completion("", (first, second)))

    await recorder.result(first, ToolResult("first"))
    after_first = await _answered(client, run)
    await recorder.result(second, ToolResult("second"))
    after_second = await _answered(client, run)
    assert await recorder.halt([], []) is None
    after_halt = await _answered(client, run)

    # A worker dying while the second call runs would not run the first again.
    assert after_first == ["a"]
    # The step's last result rides on the write before the next model call.
    assert after_second == ["a"]
    assert after_halt == ["a", "b"]


async def _answered(client: AsyncClient, run: dict[str, Any]) -> list[str]:
    return [m["tool_call_id"] for m in await _messages(client, run) if m["role"] == "tool"]


async def _claimed(
    executor: Executor, maker: async_sessionmaker[AsyncSession], run_id: uuid.UUID
) -> RunRecorder:
    """The recorder of a worker that claimed the run: one the test drives by hand."""
    claimed = await executor._claim(run_id)
    assert claimed is not None
    account = executor.turns.spending.account(claimed.owner, run_id)
    return RunRecorder(maker, run_id, claimed.attempts, executor.lease, executor.stopping, account)


async def _taken_back(
    executor: Executor,
    maker: async_sessionmaker[AsyncSession],
    redis: Redis,
    run: dict[str, Any],
) -> int:
    """The run's lease runs out and its queue message is gone: the sweep takes the run back
    from the worker that holds it (return: how many runs the sweep re-queued)."""
    await _expire(maker, run["id"])
    await redis.delete(QUEUE_NAME)
    return await executor.sweep()


async def _echoed(client: AsyncClient, executor: Executor, run: dict[str, Any]) -> Completion:
    """The echo model's first step of the run (its tool calls, for a message asking them)."""
    specs = registry.registry_for(executor.settings.config.agent, executor.turns.metrics).specs
    return await EchoProvider().complete(await _history(client, run), specs)


async def _history(client: AsyncClient, run: dict[str, Any]) -> list[ChatMessage]:
    return [ChatMessage("user", m["content"]) for m in await _messages(client, run)]


async def test_a_run_is_failed_after_max_attempts(
    client: AsyncClient, executor: Executor, maker: async_sessionmaker[AsyncSession]
) -> None:
    run = await start_run(client, "doomed")
    for _ in range(executor.settings.config.worker.max_attempts):
        assert await executor._claim(uuid.UUID(run["id"])) is not None
        await _expire(maker, run["id"])
        await executor.sweep()

    finished = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert finished["status"] == "failed"
    assert finished["error"] == "its worker stopped responding (3 attempts)"
    assert events((await client.get(f"/v1/runs/{run['id']}/events")).text)[-1][0] == "error"


async def test_a_stopping_worker_hands_the_run_back_after_its_step(
    client: AsyncClient,
    executor: Executor,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @tool
    async def sigterm(args: Nothing, context: ToolContext) -> str:
        """Stand in for the SIGTERM the worker receives while this step runs."""
        executor.stopping.set()
        return "stopping"

    monkeypatch.setattr(registry, "TOOLS", [*registry.TOOLS, sigterm])
    run = await start_run(client, "go\n/tool sigterm\n/tool current_time")
    await redis.delete(QUEUE_NAME)

    await executor.execute(uuid.UUID(run["id"]))
    handed_back = (await client.get(f"/v1/runs/{run['id']}")).json()
    roles_then = [m["role"] for m in await _messages(client, run)]
    executor.stopping.clear()
    await executor.execute(uuid.UUID(run["id"]))
    finished = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert (handed_back["status"], handed_back["attempts"]) == ("queued", 0)
    assert await redis.llen(QUEUE_NAME) == 1
    assert roles_then == ["user", "assistant", "tool"]
    assert (finished["status"], finished["attempts"]) == ("succeeded", 1)
    roles = [m["role"] for m in await _messages(client, run)]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


async def test_a_run_taken_from_the_queue_while_stopping_goes_back(
    client: AsyncClient, executor: Executor, redis: Redis
) -> None:
    run = await start_run(client, "time?\n/tool current_time")
    await redis.delete(QUEUE_NAME)
    executor.stopping.set()

    await executor.execute(uuid.UUID(run["id"]))
    untouched = (await client.get(f"/v1/runs/{run['id']}")).json()

    assert untouched["status"] == "queued"
    assert await redis.llen(QUEUE_NAME) == 1
    assert [m["role"] for m in await _messages(client, run)] == ["user"]


async def test_a_queued_run_whose_message_was_lost_is_queued_again(
    client: AsyncClient, executor: Executor, maker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    run = await start_run(client, "lost")
    await redis.delete(QUEUE_NAME)
    async with maker() as session:
        await session.execute(
            text(
                "UPDATE runs SET queued_at = clock_timestamp() - interval '1 hour' WHERE id = :id"
            ),
            {"id": run["id"]},
        )
        await session.commit()

    assert await executor.sweep() == 1
    assert await redis.llen(QUEUE_NAME) == 1
    await executor.execute(uuid.UUID(run["id"]))
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["status"] == "succeeded"


async def test_a_run_naming_an_unknown_file_is_refused(client: AsyncClient) -> None:
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    missing = str(uuid.uuid4())

    response = await client.post(
        f"/v1/conversations/{conversation}/runs", json={"content": "x", "file_ids": [missing]}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == f"file {missing} not found"

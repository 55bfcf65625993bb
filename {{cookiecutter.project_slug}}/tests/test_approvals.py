"""Tool calls a person must approve (agent.require_approval): a background run stops awaiting
approval, POST /v1/runs/{id}/approvals decides, and a worker (here in-process) goes on; an
interactive turn cannot wait, so the model is told the call needs a background run."""

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.queue import QUEUE_NAME
from app.flows.execution import Executor
from app.llm.base import Completion, ToolCall
from app.main import create_app
from app.runs.recorder import RunRecorder
from app.runs.schemas import MAX_DECISIONS
from app.runs.service import count_by_status
from tests.conftest import make_settings, new_conversation_id, start_run
from tests.sse import events
from tests.test_runs import AS_OTHER

DENIED = "error: current_time: the user denied this call"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Short event streams: a run awaiting approval is not finished, so its stream stays open.
    return {
        "agent": {"require_approval": ["current_time"]},
        "worker": {"events_stream_seconds": 0.5},
    }


async def _run(client: AsyncClient, run: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get(f"/v1/runs/{run['id']}")).json()
    return found


async def _messages(client: AsyncClient, run: dict[str, Any]) -> list[dict[str, Any]]:
    detail = (await client.get(f"/v1/conversations/{run['conversation_id']}")).json()
    messages: list[dict[str, Any]] = detail["messages"]
    return messages


async def _decide(client: AsyncClient, run: dict[str, Any], **decisions: bool) -> dict[str, Any]:
    body = {"decisions": [{"tool_call_id": k, "approved": v} for k, v in decisions.items()]}
    response = await client.post(f"/v1/runs/{run['id']}/approvals", json=body)
    assert response.status_code == 200, response.text
    decided: dict[str, Any] = response.json()
    return decided


async def _awaiting(client: AsyncClient, executor: Executor) -> dict[str, Any]:
    """A run stopped at its call of current_time, waiting for a decision."""
    run = await start_run(client, "time?\n/tool current_time")
    await executor.execute(uuid.UUID(run["id"]))
    return await _run(client, run)


async def test_a_run_awaits_approval_then_runs_the_approved_call(
    client: AsyncClient,
    executor: Executor,
    maker: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    waiting = await _awaiting(client, executor)
    roles_then = [m["role"] for m in await _messages(client, waiting)]
    async with maker() as session:
        await session.execute(
            text("UPDATE runs SET queued_at = clock_timestamp() - interval '1 hour'")
        )
        await session.commit()
        by_status = await count_by_status(session)
    swept = await executor.sweep()
    await redis.delete(QUEUE_NAME)

    decided = await _decide(client, waiting, echo_call_1=True)
    queued = await redis.llen(QUEUE_NAME)
    await executor.execute(uuid.UUID(waiting["id"]))
    finished = await _run(client, waiting)
    messages = await _messages(client, waiting)

    assert (waiting["status"], waiting["stop_reason"], waiting["attempts"]) == (
        "awaiting_approval",
        None,
        0,
    )
    assert waiting["pending_approvals"] == [
        {"id": "echo_call_1", "name": "current_time", "arguments": "{}"}
    ]
    assert roles_then == ["user", "assistant"]
    # Waiting, the run has no lease and is not queued: the sweep leaves it alone.
    assert (by_status["awaiting_approval"], swept) == (1, 0)
    assert (decided["status"], decided["pending_approvals"], queued) == ("queued", [], 1)
    assert (finished["status"], finished["stop_reason"], finished["attempts"]) == (
        "succeeded",
        "completed",
        1,
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    # The tool ran: its result is the time, not an error.
    assert datetime.fromisoformat(messages[2]["content"]).tzinfo is not None


async def test_a_denied_call_is_answered_with_the_denial_the_model_reads(
    client: AsyncClient, executor: Executor
) -> None:
    waiting = await _awaiting(client, executor)

    await _decide(client, waiting, echo_call_1=False)
    await executor.execute(uuid.UUID(waiting["id"]))
    finished = await _run(client, waiting)
    messages = await _messages(client, waiting)

    assert finished["status"] == "succeeded"
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["content"] == DENIED
    # The echo model repeats each result it was sent: it read the denial.
    assert messages[3]["content"].endswith(f"current_time: {DENIED}")


async def test_the_event_stream_names_the_calls_awaiting_approval(
    client: AsyncClient, executor: Executor
) -> None:
    waiting = await _awaiting(client, executor)
    url = f"/v1/runs/{waiting['id']}/events"
    while_waiting = events((await client.get(url)).text)

    await _decide(client, waiting, echo_call_1=True)
    await executor.execute(uuid.UUID(waiting["id"]))
    names = [name for name, _ in events((await client.get(url)).text)]

    assert [name for name, _ in while_waiting] == ["running", "tool_call", "approval_required"]
    assert while_waiting[-1][1] == {
        "calls": [{"id": "echo_call_1", "name": "current_time", "arguments": "{}"}]
    }
    assert names == [
        "running",
        "tool_call",
        "approval_required",
        "approvals",
        "running",
        "tool_result",
        "done",
    ]


async def test_calls_before_the_first_waiting_one_run_and_decisions_may_come_in_parts(
    client: AsyncClient, executor: Executor, maker: async_sessionmaker[AsyncSession]
) -> None:
    run = await start_run(client, "four calls in one step")
    claimed = await executor._claim(uuid.UUID(run["id"]))
    assert claimed is not None
    # One model step asking for four calls; only current_time needs approval.
    names = ["read_file", "current_time", "read_file", "current_time"]
    calls = [ToolCall(i, n, "{}") for i, n in zip("abcd", names, strict=True)]
    recorder = RunRecorder(
        maker,
        claimed.id,
        claimed.attempts,
        executor.lease,
        executor.stopping,
        executor.turns.spending.account(claimed.owner, claimed.id),
    )
    await recorder.step(Completion("", tuple(calls)))

    await executor._execute(claimed)
    waiting = await _run(client, run)
    first_answers = [m["tool_call_id"] for m in (await _messages(client, run))[2:]]
    partly = await _decide(client, run, b=True)
    await _decide(client, run, d=False)
    await executor.execute(uuid.UUID(run["id"]))
    finished = await _run(client, run)
    messages = await _messages(client, run)

    assert [c["id"] for c in waiting["pending_approvals"]] == ["b", "d"]
    # Call a ran as usual; c waits behind b, so that the calls run in the model's order.
    assert first_answers == ["a"]
    assert (partly["status"], [c["id"] for c in partly["pending_approvals"]]) == (
        "awaiting_approval",
        ["d"],
    )
    assert finished["status"] == "succeeded"
    assert [m["tool_call_id"] for m in messages[2:6]] == ["a", "b", "c", "d"]
    assert messages[2]["content"].startswith("error: bad arguments for read_file")
    assert datetime.fromisoformat(messages[3]["content"]).tzinfo is not None
    assert messages[5]["content"] == DENIED
    assert [m["role"] for m in messages] == ["user", "assistant", *["tool"] * 4, "assistant"]


@pytest.mark.parametrize(
    ("decisions", "loc", "message"),
    [
        ([{"tool_call_id": "nope", "approved": True}], [0, "tool_call_id"], "not awaiting"),
        (
            [{"tool_call_id": "echo_call_1", "approved": x} for x in (True, False)],
            [1, "tool_call_id"],
            "decided twice",
        ),
        ([], [], "at least 1 item"),
        (
            [{"tool_call_id": f"c{n}", "approved": True} for n in range(MAX_DECISIONS + 1)],
            [],
            f"at most {MAX_DECISIONS} items",
        ),
        ([{"tool_call_id": "echo_call_1"}], [0, "approved"], "Field required"),
    ],
    ids=["not-pending", "twice", "none", "too-many", "no-verdict"],
)
async def test_bad_decisions_get_422_naming_the_field_and_change_nothing(
    client: AsyncClient,
    executor: Executor,
    decisions: list[dict[str, Any]],
    loc: list[Any],
    message: str,
) -> None:
    waiting = await _awaiting(client, executor)

    response = await client.post(
        f"/v1/runs/{waiting['id']}/approvals", json={"decisions": decisions}
    )

    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "decisions", *loc]
    assert message in error["msg"]
    assert await _run(client, waiting) == waiting


async def test_decisions_for_a_run_not_awaiting_approval_get_409(
    client: AsyncClient, executor: Executor
) -> None:
    queued = await start_run(client, "time?\n/tool current_time")
    body = {"decisions": [{"tool_call_id": "echo_call_1", "approved": True}]}

    response = await client.post(f"/v1/runs/{queued['id']}/approvals", json=body)

    assert response.status_code == 409
    assert response.json()["detail"] == f"run {queued['id']} is queued, not awaiting approval"


async def test_another_keys_decisions_get_404_like_an_unknown_run(
    client: AsyncClient, executor: Executor
) -> None:
    waiting = await _awaiting(client, executor)
    body = {"decisions": [{"tool_call_id": "echo_call_1", "approved": True}]}
    unknown = str(uuid.uuid4())

    foreign = await client.post(f"/v1/runs/{waiting['id']}/approvals", json=body, headers=AS_OTHER)
    never = await client.post(f"/v1/runs/{unknown}/approvals", json=body, headers=AS_OTHER)

    assert (foreign.status_code, never.status_code) == (404, 404)
    assert foreign.json()["detail"].replace(waiting["id"], unknown) == never.json()["detail"]
    assert (await _run(client, waiting))["status"] == "awaiting_approval"


async def test_a_run_awaiting_approval_can_be_cancelled(
    client: AsyncClient, executor: Executor
) -> None:
    waiting = await _awaiting(client, executor)

    cancelled = (await client.post(f"/v1/runs/{waiting['id']}/cancel")).json()
    body = {"decisions": [{"tool_call_id": "echo_call_1", "approved": True}]}
    late = await client.post(f"/v1/runs/{waiting['id']}/approvals", json=body)
    await executor.execute(uuid.UUID(waiting["id"]))
    stream = events((await client.get(f"/v1/runs/{waiting['id']}/events")).text)

    assert (cancelled["status"], cancelled["stop_reason"]) == ("cancelled", "cancelled")
    assert late.status_code == 409
    assert [m["role"] for m in await _messages(client, waiting)] == ["user", "assistant"]
    assert stream[-1] == ("done", {**stream[-1][1], "status": "cancelled"})


async def test_an_interactive_turn_tells_the_model_the_call_needs_a_background_run(
    client: AsyncClient,
) -> None:
    conversation = await new_conversation_id(client)

    response = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "time?\n/tool current_time"},
    )

    assert response.status_code == 201
    exchange = response.json()
    assert exchange["stop_reason"] == "completed"
    assert [s["role"] for s in exchange["steps"]] == ["assistant", "tool", "assistant"]
    result = exchange["steps"][1]["content"]
    assert result.startswith("error: current_time: it needs a person's approval")
    assert "background run" in result


def test_a_misspelt_tool_name_stops_the_start_up(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    misspelt = {"require_approval": ["http-get", "github.create_issue"]}
    with pytest.raises(SystemExit, match="no built-in tool named http-get") as stopped:
        create_app(make_settings(tmp_path, migrated, redis_url, agent=misspelt))

    assert "agent.require_approval" in str(stopped.value)
    allowed = {"require_approval": ["http_get", "github.create_issue"]}
    assert create_app(make_settings(tmp_path, migrated, redis_url, agent=allowed)).title

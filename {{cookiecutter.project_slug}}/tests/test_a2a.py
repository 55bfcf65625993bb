"""The A2A endpoint, driven by a2a-sdk's own client as other agents drive it: the card it
resolves, tasks that are runs (sent, streamed, read, cancelled, answered when they wait on
approval), another key's tasks not found, bad requests answered with JSON-RPC errors.

As in test_responses_api.py, an in-process worker takes each queued run over committed rows,
and each test deletes what its keys wrote. The echo provider calls one tool per
`/tool NAME {json}` line of the message, then replies with the message and one `NAME: result`
line per call."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from a2a.client import A2ACardResolver, A2AClientError, Client, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import (
    get_artifact_text,
    get_data_parts,
    get_message_text,
    new_data_part,
)
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.a2a.tasks import EVENT_ID
from app.conversations.models import Conversation
from app.core.metadata import project_metadata
from app.runs.models import Run
from tests.conftest import make_settings, served_with_worker

OWNER, KEY = "a2a-tests", "a2a-test-key"
OTHER, OTHER_KEY = "a2a-other", "a2a-other-key"
BASE_URL = "http://testserver"
# The echo model says the system prompt first.
SAID = "[You are a helpful assistant.] "
GATED = {"agent": {"require_approval": ["current_time"]}}


@pytest.fixture
async def api(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    engine: AsyncEngine,
    config_overrides: dict[str, Any],
    working: bool,
) -> AsyncIterator[AsyncClient]:
    # The keys are this module's, and the limiter counts in Redis across runs: not bounded here.
    overrides = {
        "worker": {"events_poll_seconds": 0.02},
        "rate_limit": {"requests": 10_000},
        **config_overrides,
    }
    settings = make_settings(
        tmp_path, migrated, redis_url, api_keys=f"{OWNER}:{KEY},{OTHER}:{OTHER_KEY}", **overrides
    )
    async with served_with_worker(
        settings, engine, api_key=KEY, owners=(OWNER, OTHER), working=working
    ) as client:
        yield client


async def agent(api: AsyncClient, *, streaming: bool = False, key: str = KEY) -> Client:
    """a2a-sdk's client, from the card it resolves, over the app's client with this key."""
    api.headers["Authorization"] = f"Bearer {key}"
    config = ClientConfig(httpx_client=api, streaming=streaming)
    return await ClientFactory(config).create_from_url(BASE_URL)


def said(text: str, *, task: Task | None = None, immediately: bool = False) -> SendMessageRequest:
    message = Message(message_id=f"m-{text}", role=Role.ROLE_USER, parts=[Part(text=text)])
    if task is not None:
        message.task_id, message.context_id = task.id, task.context_id
    configuration = SendMessageConfiguration(return_immediately=immediately)
    return SendMessageRequest(message=message, configuration=configuration)


async def sent(client: Client, request: SendMessageRequest) -> Task:
    """The task a send that does not stream answers."""
    [response] = [r async for r in client.send_message(request)]
    assert response.HasField("task"), response
    return response.task


async def test_the_card_is_public_and_names_the_endpoint_the_key_and_the_tools(
    api: AsyncClient,
) -> None:
    card = await A2ACardResolver(api, BASE_URL).get_agent_card()
    anonymous = await api.get("/.well-known/agent-card.json", headers={"Authorization": ""})
    legacy = await api.get("/.well-known/agent.json", headers={"Authorization": ""})

    assert isinstance(card, AgentCard)
    assert (card.name, card.version) == project_metadata()
    assert card.description
    assert [(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces] == [
        (f"{BASE_URL}/v1/a2a", "JSONRPC", "1.0"),
        (f"{BASE_URL}/v1/a2a", "JSONRPC", "0.3"),
    ]
    assert card.capabilities.streaming
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert {s.id for s in card.skills} >= {"current_time", "read_file"}
    assert anonymous.status_code == 200
    # 0.3 clients find the same card, with 0.3's own fields.
    assert legacy.status_code == 200
    assert legacy.json()["url"] == f"{BASE_URL}/v1/a2a"
    assert legacy.json()["name"] == card.name


async def test_a_message_is_a_task_completed_with_the_answer_as_its_artifact(
    api: AsyncClient, engine: AsyncEngine
) -> None:
    client = await agent(api)
    task = await sent(client, said("hi"))
    read = await client.get_task(GetTaskRequest(id=task.id))
    later = await sent(client, said("and again", task=None))

    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [get_artifact_text(a) for a in task.artifacts] == [SAID + "hi"]
    assert read == task
    # The task's context is its run's conversation, of the caller's key.
    async with engine.connect() as connection:
        owner = await connection.scalar(
            select(Conversation.owner).where(Conversation.id == task.context_id)
        )
    assert owner == OWNER
    assert later.context_id != task.context_id


async def test_a_message_with_a_context_id_continues_its_conversation(api: AsyncClient) -> None:
    client = await agent(api)
    first = await sent(client, said("my name is Ada"))
    follow_up = said("what is my name?")
    follow_up.message.context_id = first.context_id
    second = await sent(client, follow_up)

    assert second.context_id == first.context_id
    assert second.id != first.id
    assert second.status.state == TaskState.TASK_STATE_COMPLETED


async def test_a_streamed_task_sends_its_runs_events_then_the_answer(api: AsyncClient) -> None:
    client = await agent(api, streaming=True)
    events = [e async for e in client.send_message(said("time?\n/tool current_time"))]

    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task"
    assert events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert kinds[-2:] == ["artifact_update", "status_update"]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    answer = get_artifact_text(events[-2].artifact_update.artifact)
    assert answer.startswith(SAID + "time?\ncurrent_time: ")
    working = [data for e in events[1:-2] for data in _data(e)]
    # The tool's call, then its result, as the run's events have them.
    call, result = working
    assert (call["name"], call["arguments"], call["id"]) == (
        "current_time",
        "{}",
        result["tool_call_id"],
    )
    assert answer.endswith(result["content"])
    updates = [getattr(e, kind) for e, kind in zip(events[1:], kinds[1:], strict=True)]
    assert {u.task_id for u in updates} == {events[0].task.id}
    # Each update names the run event it stands for: all of the run's, in order.
    stored = await api.get(f"/v1/runs/{events[0].task.id}/events")
    ids = [int(line[4:]) for line in stored.text.splitlines() if line.startswith("id: ")]
    named = [int(u.metadata[EVENT_ID]) for u in updates]
    assert named == sorted(named)
    assert sorted(set(named)) == ids
    assert int(events[0].task.metadata[EVENT_ID]) < ids[0]


async def test_a_0_3_client_is_answered_with_0_3_names_and_shapes(api: AsyncClient) -> None:
    message = {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "hi"}]}
    send = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": message}}
    task = (await api.post("/v1/a2a", json=send)).json()["result"]
    get = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}}
    read = (await api.post("/v1/a2a", json=get)).json()["result"]

    assert (task["kind"], task["status"]["state"]) == ("task", "completed")
    assert task["artifacts"][0]["parts"] == [{"kind": "text", "text": SAID + "hi"}]
    assert read["id"] == task["id"]
    assert read["status"]["state"] == "completed"


@pytest.mark.parametrize("config_overrides", [GATED])
async def test_a_call_waiting_for_approval_is_input_required_until_the_reply(
    api: AsyncClient,
) -> None:
    client = await agent(api)
    waiting = await sent(client, said("time?\n/tool current_time"))
    with pytest.raises(InvalidParamsError, match=r"it waits on .*current_time"):
        await sent(client, said("maybe", task=waiting))
    still = await client.get_task(GetTaskRequest(id=waiting.id))
    done = await sent(client, said("yes", task=waiting))

    assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    asked = get_message_text(waiting.status.message)
    assert "current_time" in asked
    assert '"yes"' in asked
    [data] = get_data_parts(waiting.status.message.parts)
    [pending] = data["pending_approvals"]
    assert pending["name"] == "current_time"
    assert still.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert (done.id, done.status.state) == (waiting.id, TaskState.TASK_STATE_COMPLETED)
    answer = get_artifact_text(done.artifacts[0])
    assert answer.startswith(SAID + "time?\ncurrent_time: ")
    assert "denied" not in answer


@pytest.mark.parametrize("config_overrides", [GATED])
async def test_a_denial_as_a_data_part_completes_the_task_without_the_call(
    api: AsyncClient,
) -> None:
    client = await agent(api, streaming=True)
    events = [e async for e in client.send_message(said("time?\n/tool current_time"))]
    waiting = events[0].task
    reply = said("", task=waiting)
    del reply.message.parts[:]
    reply.message.parts.append(new_data_part({"approved": False}))
    after = [e async for e in client.send_message(reply)]

    assert events[-1].status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert after[0].task.id == waiting.id
    assert after[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert "denied" in get_artifact_text(after[-2].artifact_update.artifact)


@pytest.mark.parametrize("working", [False])
async def test_a_submitted_task_is_cancelled(api: AsyncClient) -> None:
    client = await agent(api)
    task = await sent(client, said("hi", immediately=True))
    cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
    follower = await agent(api, streaming=True)
    # A task that has ended has nothing more to stream.
    with pytest.raises(UnsupportedOperationError, match=r"has ended \(TASK_STATE_CANCELED\)"):
        [e async for e in follower.subscribe(SubscribeToTaskRequest(id=task.id))]
    with pytest.raises(TaskNotCancelableError):
        await client.cancel_task(CancelTaskRequest(id=task.id))

    assert task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED


async def test_another_keys_task_is_not_found(api: AsyncClient) -> None:
    task = await sent(await agent(api), said("hi"))
    other = await agent(api, key=OTHER_KEY)

    for unknown in (task.id, "00000000-0000-0000-0000-000000000000", "not-a-task"):
        with pytest.raises(TaskNotFoundError):
            await other.get_task(GetTaskRequest(id=unknown))
    with pytest.raises(TaskNotFoundError):
        await other.cancel_task(CancelTaskRequest(id=task.id))
    with pytest.raises(TaskNotFoundError):
        await sent(other, said("yes", task=task))


async def test_bad_requests_are_json_rpc_errors_and_store_nothing(
    api: AsyncClient, engine: AsyncEngine
) -> None:
    no_text = {"message": {"messageId": "x", "role": "ROLE_USER", "parts": [{"data": {"a": 1}}]}}
    calls = {
        "no text": ("SendMessage", no_text),
        "unknown context": (
            "SendMessage",
            {
                **no_text,
                "message": {
                    **no_text["message"],
                    "parts": [{"text": "hi"}],
                    "contextId": "00000000-0000-0000-0000-000000000000",
                },
            },
        ),
        "unknown method": ("tasks/teleport", {}),
        "bad params": ("GetTask", {"id": {"nested": True}}),
    }
    codes = {}
    for name, (method, params) in calls.items():
        body = {"jsonrpc": "2.0", "id": name, "method": method, "params": params}
        response = await api.post("/v1/a2a", json=body, headers={"A2A-Version": "1.0"})
        assert response.status_code == 200, response.text
        codes[name] = (response.json()["id"], response.json()["error"]["code"])
    unauthorized = await api.post("/v1/a2a", json={}, headers={"Authorization": ""})
    async with engine.connect() as connection:
        stored = await connection.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.owner == OWNER)
        )

    assert codes == {
        "no text": ("no text", -32602),
        "unknown context": ("unknown context", -32602),
        "unknown method": ("unknown method", -32601),
        "bad params": ("bad params", -32602),
    }
    assert unauthorized.status_code == 401
    assert stored == 0


@pytest.mark.parametrize(
    "config_overrides", [{"spend": {"budgets": {"default": {"usd_per_month": 0}}}}]
)
async def test_a_used_up_budget_refuses_a_message_before_anything_is_stored(
    api: AsyncClient, engine: AsyncEngine
) -> None:
    client = await agent(api)
    with pytest.raises(A2AClientError, match="429"):
        await sent(client, said("hi"))
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "x", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }
    refused = await api.post("/v1/a2a", json=body, headers={"A2A-Version": "1.0"})
    async with engine.connect() as connection:
        stored = await connection.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.owner == OWNER)
        )

    assert refused.status_code == 429, refused.text
    assert "usd_per_month of 0 US dollars is used up" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    assert stored == 0


def _stream(text: str) -> dict[str, Any]:
    message = {"messageId": "x", "role": "ROLE_USER", "parts": [{"text": text}]}
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage",
        "params": {"message": message},
    }


ONE_STREAM = {
    "worker": {
        "max_event_streams_per_key": 1,
        "events_stream_seconds": 1,
        "events_poll_seconds": 0.02,
    },
    "requests": {"max_json_bytes": 2000},
}


@pytest.mark.parametrize("working", [False])
@pytest.mark.parametrize("config_overrides", [ONE_STREAM])
async def test_streams_hold_the_keys_slots_and_bodies_their_bound_before_anything_is_stored(
    api: AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"A2A-Version": "1.0"}
    first = asyncio.create_task(api.post("/v1/a2a", json=_stream("hi"), headers=headers))
    for _ in range(500):
        if await _runs(engine):
            break
        await asyncio.sleep(0.01)
    second = await api.post("/v1/a2a", json=_stream("hi"), headers=headers)
    too_large = await api.post("/v1/a2a", json=_stream("x" * 3000), headers=headers)
    stored = await _runs(engine)
    followed = await first

    assert second.status_code == 429, second.text
    assert "event streams of this key open" in second.json()["detail"]
    assert too_large.status_code == 413
    assert stored == 1
    # The first stream ran its course (a second here): the task as submitted, no more.
    assert followed.status_code == 200
    assert '"state":"TASK_STATE_SUBMITTED"' in followed.text.replace(" ", "")


async def _runs(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(Run).where(Run.owner == OWNER)
        )
    return count or 0


def _data(event: StreamResponse) -> list[dict[str, Any]]:
    if not event.HasField("status_update"):
        return []
    parts = event.status_update.status.message.parts
    return [d for d in get_data_parts(parts) if isinstance(d, dict)]

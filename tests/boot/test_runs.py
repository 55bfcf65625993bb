"""Background runs with real worker processes (`python -m app.worker`) on real PostgreSQL and
Redis: a run end to end, its event stream resumed, cancel, kill -9 of a worker mid-run,
SIGTERM letting the current step finish, and a run awaiting approval outliving its worker.
A background response of the Responses API streamed on after its worker is killed, and one
waiting on approval outliving its worker; an A2A task followed again (SubscribeToTask) after
its worker is killed. And a streamed turn whose client goes away; the
playground approving, denying and stopping
in a browser."""

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_artifact_text
from a2a.types.a2a_pb2 import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import UnsupportedOperationError

from tests.harness.api import (
    Api,
    Process,
    api_env,
    config_file,
    new_secret,
    running_api,
    start_worker,
)
from tests.harness.browser import chromium_page
from tests.harness.environment import free_port
from tests.harness.postgres_server import PostgresServer
from tests.harness.redis_server import RedisServer
from tests.harness.runs import RUN_SECONDS, start_run, wait_for_run
from tests.project import Project

KEY = new_secret()


class SlowPage(ThreadingHTTPServer):
    """A host for the http_get tool whose first answer waits until the test releases it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.hits = 0
        self.hit = threading.Event()
        self.release = threading.Event()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def reset(self) -> None:
        self.hits = 0
        self.hit.clear()
        self.release.clear()


class _SlowHandler(BaseHTTPRequestHandler):
    server: SlowPage

    def do_GET(self) -> None:
        self.server.hits += 1
        if self.server.hits == 1:
            self.server.hit.set()
            self.server.release.wait(RUN_SECONDS)
        body = b"slow page"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class Stack:
    project: Project
    env: dict[str, str]
    work: Path
    page: SlowPage
    api: Api
    # The same settings, but http_get's calls need approval (for workers started with it).
    gated_config: Path
    workers: list[Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def client(self) -> httpx.Client:
        return self.api.client(KEY)

    def worker(self, **env: str) -> Process:
        work = self.work / f"worker-{len(self.workers)}"
        process = start_worker(self.project, {**self.env, **env}, work)
        self.workers.append(process)
        return process

    def a_worker(self, *, gated: bool = False) -> Process:
        """A running worker, with the gated settings or not: one an earlier test left running,
        or a new one, the others stopped (so that each test holds alone, whatever ran before
        it, and no worker of the other settings takes its run)."""
        running = [w for w in self.workers if w.popen is not None and w.popen.poll() is None]
        wanted = [
            w for w in running if (w.env.get("CONFIG_FILE") == str(self.gated_config)) == gated
        ]
        for worker in running:
            if worker not in wanted:
                worker.stop()
        if wanted:
            return wanted[0]
        return self.worker(**({"CONFIG_FILE": str(self.gated_config)} if gated else {}))

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.popen is not None and worker.popen.poll() is None:
                worker.stop()


@pytest.fixture(scope="module")
def stack(
    default_project: Project,
    postgres: PostgresServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("runs")
    page = SlowPage()
    threading.Thread(target=page.serve_forever, daemon=True).start()
    overrides: dict[str, dict[str, Any]] = {
        "rate_limit": {"requests": 10_000},
        "agent": {"http_allowed_hosts": [page.host], "tool_timeout_seconds": RUN_SECONDS},
        # Short, so a killed worker's run is retried within the test's patience.
        # A run's events stream ends after a second (a client follows it again from its last
        # event) and finds new events within a tenth.
        "worker": {
            "visibility_timeout_seconds": 3,
            "sweep_seconds": 0.5,
            "events_stream_seconds": 1,
            "events_poll_seconds": 0.1,
        },
        # Not the shipped 0.0.0.0:9101: this machine runs other tiers beside this one (the
        # workers here run one at a time, so one free port serves them all).
        "metrics": {"worker_host": "127.0.0.1", "worker_port": free_port()},
        # The browser test's page (off by default outside development).
        "playground": {"enabled": True},
    }
    config = config_file(default_project, work / "config.yaml", overrides)
    overrides["agent"] = {**overrides["agent"], "require_approval": ["http_get"]}
    gated = config_file(default_project, work / "gated.yaml", overrides)
    env = api_env(
        work,
        database_url=postgres.create_database("runs"),
        redis_url=redis_server.url_for(2),
        CONFIG_FILE=str(config),
        API_KEYS=KEY,
    )
    try:
        with running_api(default_project, env, work / "api.log") as api:
            stack = Stack(default_project, env, work, page, api, gated)
            try:
                yield stack
            finally:
                page.release.set()
                stack.stop_workers()
    finally:
        page.shutdown()
        page.server_close()


@pytest.fixture
def page(stack: Stack) -> Iterator[SlowPage]:
    stack.page.reset()
    yield stack.page
    stack.page.release.set()


def _roles(client: httpx.Client, run: dict[str, Any]) -> list[str]:
    messages = client.get(f"/v1/conversations/{run['conversation_id']}").json()["messages"]
    return [m["role"] for m in messages]


def _events(body: str) -> list[tuple[int, str, dict[str, Any]]]:
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line[:1] != ":")
        found.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return found


def _get_page(page: SlowPage) -> str:
    return f'\n/tool http_get {{"url": "http://{page.host}/"}}'


def test_a_run_completes_on_a_worker_and_its_events_resume(stack: Stack) -> None:
    stack.a_worker()
    with stack.client() as client:
        run = start_run(client, "time?\n/tool current_time")
        finished = wait_for_run(client, run["id"])
        url = f"/v1/runs/{run['id']}/events"
        whole = _events(client.get(url).text)
        resumed = _events(client.get(url, headers={"Last-Event-ID": str(whole[1][0])}).text)

    assert (finished["status"], finished["stop_reason"], finished["attempts"]) == (
        "succeeded",
        "completed",
        1,
    )
    assert [name for _, name, _ in whole] == ["running", "tool_call", "tool_result", "done"]
    assert resumed == whole[2:]
    assert whole[-1][2]["assistant_message"]["content"].endswith(whole[2][2]["content"])


def test_a_running_run_is_cancelled_after_its_step(stack: Stack, page: SlowPage) -> None:
    stack.a_worker()
    with stack.client() as client:
        run = start_run(client, "fetch" + _get_page(page) + "\n/tool current_time")
        assert page.hit.wait(RUN_SECONDS)
        asked = client.post(f"/v1/runs/{run['id']}/cancel").json()
        page.release.set()
        finished = wait_for_run(client, run["id"])
        roles = _roles(client, run)

    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    assert (finished["status"], finished["stop_reason"]) == ("cancelled", "cancelled")
    # The tool call in progress finished and was stored; no model call came after it.
    assert roles == ["user", "assistant", "tool"]


def test_a_run_survives_its_worker_killed_mid_step(stack: Stack, page: SlowPage) -> None:
    for worker in stack.workers:
        worker.stop()
    doomed = stack.worker()
    with stack.client() as client:
        run = start_run(client, "fetch" + _get_page(page))
        assert page.hit.wait(RUN_SECONDS)
        doomed.kill()
        stack.worker()
        finished = wait_for_run(client, run["id"])
        messages = client.get(f"/v1/conversations/{run['conversation_id']}").json()["messages"]

    assert (finished["status"], finished["attempts"]) == ("succeeded", 2)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    # The step stored before the kill was not written again: its call was answered once.
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert messages[2]["content"] == "HTTP 200\nslow page"
    assert page.hits == 2


def test_sigterm_lets_the_current_step_finish_and_hands_the_run_on(
    stack: Stack, page: SlowPage
) -> None:
    stack.stop_workers()
    stopping = stack.worker()
    with stack.client() as client:
        run = start_run(client, "fetch" + _get_page(page) + "\n/tool current_time")
        assert page.hit.wait(RUN_SECONDS)
        assert stopping.popen is not None
        stopping.popen.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        page.release.set()
        code = stopping.popen.wait(RUN_SECONDS)
        handed_back = client.get(f"/v1/runs/{run['id']}").json()
        roles_then = _roles(client, run)
        stack.worker()
        finished = wait_for_run(client, run["id"])
        roles = _roles(client, run)

    assert code == 0
    assert handed_back["status"] == "queued"
    assert roles_then == ["user", "assistant", "tool"]
    assert (finished["status"], finished["attempts"]) == ("succeeded", 1)
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert page.hits == 1


def test_a_run_awaiting_approval_outlives_its_worker_and_runs_the_call_once(
    stack: Stack, page: SlowPage
) -> None:
    stack.stop_workers()
    gated = {"CONFIG_FILE": str(stack.gated_config)}
    doomed = stack.worker(**gated)
    page.release.set()
    with stack.client() as client:
        run = start_run(client, "fetch" + _get_page(page))
        waiting = wait_for_run(client, run["id"], frozenset({"awaiting_approval"}))
        doomed.kill()
        hits_while_waiting = page.hits
        (call,) = waiting["pending_approvals"]
        decision = {"decisions": [{"tool_call_id": call["id"], "approved": True}]}
        decided = client.post(f"/v1/runs/{run['id']}/approvals", json=decision)
        finisher = stack.worker(**gated)
        finished = wait_for_run(client, run["id"])
        messages = client.get(f"/v1/conversations/{run['conversation_id']}").json()["messages"]

    assert (call["name"], hits_while_waiting) == ("http_get", 0)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "queued"
    # A new worker finished it: the killed one held no lease, so nothing was retried.
    assert (finished["status"], finished["attempts"]) == ("succeeded", 1)
    assert run["id"] in finisher.output()
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["content"] == "HTTP 200\nslow page"
    assert page.hits == 1


def test_a_client_that_disconnects_stops_the_turn_in_progress(stack: Stack, page: SlowPage) -> None:
    stopped = "stream stopped: the client disconnected"
    with stack.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()["id"]
        content = "fetch" + _get_page(page) + "\n/tool current_time"
        with client.stream(
            "POST",
            f"/v1/conversations/{conversation}/messages",
            json={"content": content},
            headers={"Accept": "text/event-stream"},
        ) as response:
            # Held open (a dropped iterator would close the connection at once).
            lines = response.iter_lines()
            assert next(lines) == "event: tool_call"
            assert page.hit.wait(RUN_SECONDS)
        # Leaving the block closed the connection while the tool call was in progress.
        deadline = time.monotonic() + RUN_SECONDS
        while stopped not in stack.api.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        page.release.set()
        messages = client.get(f"/v1/conversations/{conversation}").json()["messages"]

    assert stopped in stack.api.output()
    # The tool call was cut off with the stream: no result, no further model call.
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_the_playground_approves_denies_and_stops_a_background_run(
    stack: Stack, page: SlowPage
) -> None:
    stack.a_worker(gated=True)
    # The api's own settings need no approval: a direct message runs http_get at once.
    with chromium_page(390) as browser:
        browser.goto(f"{stack.base_url}/playground")
        browser.fill("#key", KEY)
        # Stop on a direct message: its stream is cut off while the tool call holds it.
        browser.fill("#message", "fetch" + _get_page(page))
        browser.press("#message", "Enter")
        assert page.hit.wait(RUN_SECONDS)
        browser.click("#stop")
        browser.wait_for_selector(".stopped")
        stopped_message = browser.locator(".stopped").last.inner_text()
        page.release.set()

        # A run whose two gated calls wait, one after the other: the first approved, the
        # second denied.
        browser.check("#background")
        browser.fill("#message", "fetch twice" + _get_page(page) + _get_page(page))
        browser.press("#message", "Enter")
        asked = browser.locator(".approval").first
        asked.get_by_role("button", name="Approve").wait_for()
        question = asked.inner_text()
        # Past the events stream's second: the page must follow the run on a new stream.
        time.sleep(1.2)
        buttons = [asked.get_by_role("button", name=n).bounding_box() for n in ("Approve", "Deny")]
        asked.get_by_role("button", name="Approve").click()
        browser.locator(".approval").nth(1).get_by_role("button", name="Deny").click()
        browser.wait_for_selector("#status:has-text('done')", timeout=RUN_SECONDS * 1000)
        decisions = browser.locator(".approval").all_inner_texts()
        results = browser.locator(".tool-result").all_inner_texts()
        reply = browser.locator(".reply").last.inner_text()

        # Stop on a run: cancelled while its call waits for approval.
        browser.fill("#message", "fetch again" + _get_page(page))
        browser.press("#message", "Enter")
        browser.locator(".approval").nth(2).get_by_role("button", name="Approve").wait_for()
        browser.click("#stop")
        browser.wait_for_selector("#status:has-text('cancelled')", timeout=RUN_SECONDS * 1000)
        stopped_run = browser.locator(".stopped").last.inner_text()
        decisions += browser.locator(".approval").all_inner_texts()[2:]

    assert stopped_message == "Stopped."
    url = f'{{"url": "http://{page.host}/"}}'
    assert question.startswith(f"Approve http_get {url}?")
    assert all(box is not None and box["x"] + box["width"] <= 390 for box in buttons), buttons
    assert decisions == [
        f"http_get {url}: approved",
        f"http_get {url}: denied",
        f"http_get {url}: not decided (the run ended)",
    ]
    assert results == [
        "← http_get: HTTP 200\nslow page",
        "← http_get: error: http_get: the user denied this call",
    ]
    assert reply.endswith("http_get: error: http_get: the user denied this call")
    assert "http_get: HTTP 200\nslow page" in reply
    assert stopped_run == "Stopped: the run was cancelled."
    # The direct message's call and the approved one reached the page; the denied and the
    # cancelled ones did not.
    assert page.hits == 2


def _sdk(stack: Stack) -> openai.OpenAI:
    """The openai SDK, its base URL the api's /v1, with no retries."""
    return openai.OpenAI(api_key=KEY, base_url=f"{stack.base_url}/v1", max_retries=0)


def _followed(client: openai.OpenAI, response_id: str, after: int = -1) -> list[Any]:
    """The response's events after `after` until its last, as a client that follows it again
    from the last event it saw whenever a stream ends first (each lasts a second here)."""
    seen: list[Any] = []
    deadline = time.monotonic() + RUN_SECONDS
    while not seen or seen[-1].type not in ("response.completed", "response.failed"):
        assert time.monotonic() < deadline, [e.type for e in seen]
        with client.responses.retrieve(response_id, stream=True, starting_after=after) as stream:
            for event in stream:
                seen.append(event)
                after = event.sequence_number
    return seen


def _settled(client: openai.OpenAI, response_id: str) -> Any:
    deadline = time.monotonic() + RUN_SECONDS
    while (response := client.responses.retrieve(response_id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, response.status
        time.sleep(0.1)
    return response


def test_a_background_responses_stream_resumes_after_its_worker_is_killed(
    stack: Stack, page: SlowPage
) -> None:
    stack.stop_workers()
    doomed = stack.worker()
    client = _sdk(stack)
    started = client.responses.create(
        model="agent", input="fetch" + _get_page(page) + "\n/tool current_time", background=True
    )
    assert page.hit.wait(RUN_SECONDS)
    with client.responses.retrieve(started.id, stream=True) as stream:
        events = iter(stream)
        first = [next(events), next(events)]
    doomed.kill()
    stack.worker()
    resumed = _followed(client, started.id, after=first[-1].sequence_number)
    whole = _followed(client, started.id)

    assert [e.type for e in first] == ["response.created", "response.in_progress"]
    # Exactly the events after the last one seen, none twice, as a fresh read has them.
    assert [e.model_dump() for e in first + resumed] == [e.model_dump() for e in whole]
    assert [e.sequence_number for e in whole] == list(range(len(whole)))
    items = [e.item for e in resumed if e.type == "response.output_item.done"]
    assert [i.type for i in items] == ["mcp_call", "mcp_call", "message"]
    assert (items[0].name, items[0].output) == ("http_get", "HTTP 200\nslow page")
    assert whole[-1].type == "response.completed"
    # The killed worker's call, and the call of the attempt that finished the run.
    assert page.hits == 2


def test_a_response_waiting_on_approval_outlives_its_worker(stack: Stack, page: SlowPage) -> None:
    doomed = stack.a_worker(gated=True)
    page.release.set()
    client = _sdk(stack)
    started = client.responses.create(
        model="agent", input="fetch" + _get_page(page), background=True
    )
    waiting = _settled(client, started.id)
    doomed.kill()
    (request,) = waiting.output
    decided = client.responses.create(
        model="agent",
        previous_response_id=waiting.id,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
        background=True,
    )
    stack.a_worker(gated=True)
    finished = _settled(client, decided.id)

    assert (waiting.status, request.type, request.name) == (
        "completed",
        "mcp_approval_request",
        "http_get",
    )
    assert [i.type for i in finished.output] == ["mcp_call", "message"]
    assert finished.output[0].output == "HTTP 200\nslow page"
    assert page.hits == 1


async def _a2a(stack: Stack, http: httpx.AsyncClient, *, streaming: bool) -> Client:
    """a2a-sdk's client, from the card it resolves, over http (which sends the key)."""
    config = ClientConfig(httpx_client=http, streaming=streaming)
    return await ClientFactory(config).create_from_url(stack.base_url)


async def _subscribed(client: Client, task_id: str) -> list[StreamResponse]:
    """One subscription's events: the task as it is, then its updates until the stream ends
    (a second here), or the task ends; none once it has ended (there is nothing to follow)."""
    try:
        return [e async for e in client.subscribe(SubscribeToTaskRequest(id=task_id))]
    except UnsupportedOperationError:
        return []


async def _a2a_task_across_a_killed_worker(
    stack: Stack, page: SlowPage, doomed: Process
) -> tuple[list[list[StreamResponse]], Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=RUN_SECONDS) as http:
        sender = await _a2a(stack, http, streaming=False)
        follower = await _a2a(stack, http, streaming=True)
        return await _followed_across_a_kill(stack, page, doomed, sender, follower)


async def _followed_across_a_kill(
    stack: Stack, page: SlowPage, doomed: Process, sender: Client, follower: Client
) -> tuple[list[list[StreamResponse]], Any]:
    message = Message(
        message_id="fetch", role=Role.ROLE_USER, parts=[Part(text="fetch" + _get_page(page))]
    )
    immediately = SendMessageConfiguration(return_immediately=True)
    [sent] = [
        e
        async for e in sender.send_message(
            SendMessageRequest(message=message, configuration=immediately)
        )
    ]
    assert await asyncio.to_thread(page.hit.wait, RUN_SECONDS)
    subscriptions = [await _subscribed(follower, sent.task.id)]
    doomed.kill()
    # The new worker boots while the task is followed: waiting for it first let a slow boot
    # (a loaded CI machine) outlast the retry, and the task ended before it was followed again.
    replacing = asyncio.create_task(asyncio.to_thread(stack.worker))
    deadline = time.monotonic() + RUN_SECONDS
    ended = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED}
    while subscriptions[-1] and _state(subscriptions[-1][-1]) not in ended:
        assert time.monotonic() < deadline, [_state(e) for e in subscriptions[-1]]
        subscriptions.append(await _subscribed(follower, sent.task.id))
    await replacing
    final = await follower.get_task(GetTaskRequest(id=sent.task.id))
    return [events for events in subscriptions if events], final


def _state(event: StreamResponse) -> int:
    if event.HasField("task"):
        return event.task.status.state
    if event.HasField("status_update"):
        return event.status_update.status.state
    return TaskState.TASK_STATE_WORKING


def _event_id(event: StreamResponse) -> int:
    kind = event.WhichOneof("payload")
    assert kind is not None
    return int(getattr(event, kind).metadata["run_event_id"])


def test_an_a2a_task_is_followed_again_after_its_worker_is_killed(
    stack: Stack, page: SlowPage
) -> None:
    stack.stop_workers()
    doomed = stack.worker()
    subscriptions, final = asyncio.run(_a2a_task_across_a_killed_worker(stack, page, doomed))

    # The first stream ended (after a second here) before the kill: the task was followed again.
    assert len(subscriptions) >= 2
    # Each subscription opens with the task as it is, then only what came after it: no run
    # event is told twice, within one subscription or across them.
    told: list[int] = []
    for events in subscriptions:
        assert events[0].HasField("task")
        snapshot = _event_id(events[0])
        assert not told or snapshot >= told[-1]
        updates = [_event_id(e) for e in events[1:]]
        assert all(event_id > snapshot for event_id in updates)
        told += [snapshot, *updates]
    updates = [_event_id(e) for events in subscriptions for e in events[1:]]
    # The answer's artifact and the final status stand for the one "done" event.
    assert len(updates) == len(set(updates)) + sum(
        e.HasField("artifact_update") for events in subscriptions for e in events
    )
    assert subscriptions[0][0].task.status.state == TaskState.TASK_STATE_WORKING
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    answers = [get_artifact_text(a) for a in final.artifacts]
    assert len(answers) == 1
    assert answers[0].startswith("[You are a helpful assistant.] fetch")
    assert answers[0].endswith("http_get: HTTP 200\nslow page")
    # The killed worker's call, and the call of the attempt that finished the run.
    assert page.hits == 2

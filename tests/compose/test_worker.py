"""The worker service on a real engine: healthy, a run through the stack, three replicas
sharing the queue, and a run whose worker container is killed finished by another."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest
import yaml

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness import docker as lab
from tests.harness.runs import RUN_SECONDS, start_run, wait_for_run
from tests.harness.scratch import Scratch
from tests.harness.stack import Rendered, Stack, running_stack

# The first variant only: what a worker sends Redis is run against each flavor by the generated
# suite's Redis modules inside each variant's image (test_stack.py); the queue shared by
# replicas, a killed worker's run and its messages are PostgreSQL's leases and the same code.
pytestmark = FIRST_VARIANT_ONLY

# A host for the http_get tool whose first answer waits 30 s: time to kill the worker mid-step.
SLOW_PAGE = """
import http.server, time
hits = 0
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global hits
        hits += 1
        if hits == 1:
            time.sleep(30)
        body = b"slow page"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Page).serve_forever()
"""
# The model of this module's stack: Anthropic's Messages API, served by the project's fake.
ANTHROPIC = {
    "provider": "anthropic",
    "model": "claude-test",
    "base_url": "http://fakeanthropic:8080",
    "max_retries": 0,
}
ANTHROPIC_KEY = "sk-ant-compose-tier"
# Two calls of current_time: three model calls and two tool calls a run.
TWO_CALLS = "/tool current_time\n/tool current_time {}"


@pytest.fixture(scope="module")
def stack(rendered: Rendered) -> Iterator[Stack]:
    """The module's stack, its config allowing the slow page and retrying runs fast, its
    model Anthropic's API (a fake on the stack's network), reached through the real key file
    and config path."""
    config_path = rendered.project.path / "config" / "config.yaml"
    key_path = rendered.project.path / "secrets" / "anthropic_api_key"
    shipped = config_path.read_text()
    config = yaml.safe_load(shipped)
    config["llm"].update(ANTHROPIC)
    config["agent"].update(http_allowed_hosts=["slowpage:8080"], tool_timeout_seconds=60)
    config["worker"].update(visibility_timeout_seconds=5, sweep_seconds=1)
    # Every call holds on a budget and is charged to the ledger: a dollar per million
    # tokens either way (the fake's model is in no price table).
    config["spend"].update(
        prices={"anthropic:claude-test": {"input": 1, "output": 1}},
        budgets={"default": {"usd_per_day": 1000}},
    )
    # These tests poll run states; they count runs, not requests.
    config["rate_limit"]["requests"] = 10_000
    config_path.write_text(yaml.safe_dump(config))
    key_path.write_text(ANTHROPIC_KEY)
    try:
        with running_stack(rendered) as stack, _fake_anthropic(stack):
            yield stack
    finally:
        config_path.write_text(shipped)
        key_path.write_text("")


@contextmanager
def _fake_anthropic(stack: Stack) -> Iterator[None]:
    """The fake on the stack's network as `fakeanthropic` (the model is first called after
    start-up, so it may join now), removed before the stack's network is."""
    fake = Scratch("anthropic")
    try:
        lab.docker(
            "run", "-d", "--name", fake.name("fake"), "--network", stack.network(),
            "--network-alias", "fakeanthropic", stack.images.test, "python", "-m",
            "tests.fake_anthropic", "--host", "0.0.0.0", "--port", "8080", "--key", ANTHROPIC_KEY,
        )  # fmt: skip
        yield
    finally:
        fake.close()


def _workers(stack: Stack) -> list[str]:
    return stack.compose("ps", "-q", "worker").stdout.split()


def test_the_worker_is_healthy_and_hardened_like_the_api(stack: Stack) -> None:
    worker = stack.inspect("worker")
    host = worker["HostConfig"]

    assert worker["State"]["Health"]["Status"] == "healthy"
    assert worker["Config"]["Cmd"] == ["python", "-m", "app.worker"]
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["Privileged"]) == (True, ["ALL"], False)
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0
    assert list(worker["NetworkSettings"]["Networks"]) == [stack.network()]
    # Nothing published: the worker is reached by nobody, it reaches db and redis.
    assert not host["PortBindings"]
    # Secrets as files, as the api has them; no value in the environment.
    assert "API_KEYS_FILE=/run/secrets/api_keys" in worker["Config"]["Env"]
    assert not any(v.startswith(("API_KEYS=", "SECRET_KEY=")) for v in worker["Config"]["Env"])


def test_a_run_completes_through_the_stack(stack: Stack) -> None:
    with stack.client() as client:
        run = start_run(client, "time?\n/tool current_time")
        finished = wait_for_run(client, run["id"])
        messages = client.get(f"/v1/conversations/{run['conversation_id']}").json()["messages"]

    assert (finished["status"], finished["stop_reason"]) == ("succeeded", "completed")
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    # Answered by Anthropic's API (the fake refuses any key but the one in the key file).
    assert messages[-1]["content"].startswith("fake reply to: time?")
    answered = {(m["provider"], m["model"]) for m in messages if m["role"] == "assistant"}
    assert answered == {("anthropic", "claude-test")}
    assert (finished["provider"], finished["model"]) == ("anthropic", "claude-test")


def test_three_workers_share_the_queue(stack: Stack) -> None:
    stack.compose("up", "-d", "--wait", "--no-build", "--scale", "worker=3", "worker")
    try:
        workers = _workers(stack)
        with stack.client() as client:
            runs = [start_run(client, f"run {n}\n/tool current_time") for n in range(12)]
            finished = [wait_for_run(client, run["id"]) for run in runs]
        claimed_by = {}
        for container in workers:
            for line in lab.docker("logs", container).stdout.splitlines():
                if '"run claimed"' in line:
                    claimed_by[json.loads(line)["run_id"]] = container
    finally:
        stack.compose("up", "-d", "--wait", "--no-build", "--scale", "worker=1", "worker")

    assert len(workers) == 3
    assert [run["status"] for run in finished] == ["succeeded"] * 12
    ours = {run["id"] for run in runs}
    # Every run was claimed, and by more than one of the three.
    assert ours <= set(claimed_by)
    assert len({claimed_by[run_id] for run_id in ours}) >= 2


def test_a_run_whose_worker_is_killed_is_finished_by_another(stack: Stack) -> None:
    scratch = Scratch("slow")
    page = scratch.name("slowpage")
    lab.docker(
        "run", "-d", "--name", page, "--network", stack.network(), "--network-alias",
        "slowpage", stack.images.api, "python", "-c", SLOW_PAGE,
    )  # fmt: skip
    stack.compose("up", "-d", "--wait", "--no-build", "--scale", "worker=2", "worker")
    try:
        with stack.client() as client:
            run = start_run(client, '/tool http_get {"url": "http://slowpage:8080/"}')
            claimer = _wait_for_claim(stack, run["id"])
            lab.docker("kill", "--signal", "KILL", claimer)
            finished = wait_for_run(client, run["id"])
            messages = client.get(f"/v1/conversations/{run['conversation_id']}").json()
    finally:
        scratch.close()
        stack.compose("up", "-d", "--wait", "--no-build", "--scale", "worker=1", "worker")

    assert (finished["status"], finished["attempts"]) == ("succeeded", 2)
    roles = [m["role"] for m in messages["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert messages["messages"][2]["content"] == "HTTP 200\nslow page"


def test_runs_whose_worker_is_killed_store_every_message_once(stack: Stack) -> None:
    """Killed at whatever instant it is at, the worker leaves runs that end as if it had not
    been: three model calls, two tool calls and six messages each, none stored twice; and
    none charged twice, with the api killed too, and no hold on the budget left behind."""
    with stack.client() as client:
        before = _spent(client)
        runs = [start_run(client, f"{n}: what time is it?\n{TWO_CALLS}") for n in range(20)]
        lab.docker("kill", "--signal", "KILL", _workers(stack)[0])
        lab.docker("kill", "--signal", "KILL", stack.container("api"))
        stack.compose("up", "-d", "--wait", "--no-build", "api", "worker")
    with stack.client() as client:
        finished = [wait_for_run(client, run["id"]) for run in runs]
        conversations = [
            client.get(f"/v1/conversations/{run['conversation_id']}").json()["messages"]
            for run in runs
        ]
        after = _spent(client)
        [budget] = client.get("/v1/usage").json()["budgets"]

    assert [(run["status"], run["stop_reason"]) for run in finished] == [
        ("succeeded", "completed")
    ] * 20
    roles = ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [[m["role"] for m in messages] for messages in conversations] == [roles] * 20
    # The tokens of a run are those of its three stored model calls, whichever attempt
    # made them.
    for run, messages in zip(finished, conversations, strict=True):
        prompt = sum(m["usage"]["prompt_tokens"] for m in messages if m["role"] == "assistant")
        assert run["usage"]["prompt_tokens"] == prompt
    # The ledger has each stored model call once, at its price, and nothing more.
    steps = [m for messages in conversations for m in messages if m["role"] == "assistant"]
    tokens = sum(m["usage"]["prompt_tokens"] + m["usage"]["completion_tokens"] for m in steps)
    assert (after[0] - before[0], after[1] - before[1]) == (60, Decimal(tokens) / 1_000_000)
    # The budget counts what the ledger lists (its totals per day follow the ledger's rows,
    # whichever process wrote them); the dead worker's holds went with the sweep and the
    # runs' next attempts.
    assert Decimal(budget["spent"]) == after[1]
    assert (budget["name"], budget["held"]) == ("usd_per_day", "0")
    assert stack.psql("SELECT count(*) FROM spend_holds") == "0"


def _spent(client: httpx.Client) -> tuple[int, Decimal]:
    """The key's model calls today and what they cost, by its ledger."""
    report = client.get("/v1/usage", params={"days": 1}).json()
    return sum(day["calls"] for day in report["days"]), Decimal(report["cost_usd"])


def _wait_for_claim(stack: Stack, run_id: str) -> str:
    """The worker container that claimed the run (and is now inside the slow tool call)."""
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        for container in _workers(stack):
            if f'"run_id": "{run_id}"' in lab.docker("logs", container).stdout:
                # Let it reach the page before the kill.
                time.sleep(2)
                return container
        time.sleep(0.3)
    raise AssertionError(f"no worker claimed run {run_id}")

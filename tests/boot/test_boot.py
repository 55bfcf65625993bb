"""Install rendered projects and boot them as processes against real PostgreSQL and Redis."""

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.boot.conftest import BOOTED
from tests.harness.api import Service
from tests.harness.browser import chromium_page
from tests.harness.environment import need
from tests.harness.postgres_server import PostgresServer
from tests.harness.redis_server import RedisServer
from tests.project import assert_only_passes, project_env


def test_health_is_200_with_database_and_redis_connected(service: Service) -> None:
    response = httpx.get(f"{service.base_url}/health")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "database", "redis")} == {
        "status": "healthy",
        "database": "connected",
        "redis": "connected",
    }
    assert body["version"] == service.project.answers.get("version", "0.1.0")


def test_agent_round_trip_over_http(service: Service) -> None:
    provider = service.project.answers.get("llm_provider", "echo")
    with service.client() as client:
        conversation = client.post("/v1/conversations", json={"title": "boot"}).json()
        reply = client.post(
            f"/v1/conversations/{conversation['id']}/messages", json={"content": "ping?"}
        )
        streamed = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "stream it"},
            headers={"Accept": "text/event-stream"},
        )
        stored = client.get(f"/v1/conversations/{conversation['id']}").json()["messages"]

    expected = {"echo": "[You are a helpful assistant.] ping?", "openai": "fake reply to: ping?"}
    assert reply.status_code == 201
    assert reply.json()["assistant_message"]["content"] == expected[provider]
    assert streamed.headers["content-type"].startswith("text/event-stream")
    done = [b for b in streamed.text.split("\n\n") if b.startswith("event: done")]
    assert len(done) == 1
    assert len(stored) == 4
    assert (
        stored[-1]["content"]
        == json.loads(done[0].split("data: ", 1)[1])["assistant_message"]["content"]
    )


def _sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, JSON data) of each Server-Sent Event; keep-alive comments skipped."""
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line[:1] != ":")
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_agent_calls_a_tool_and_feeds_its_result_back_over_http(service: Service) -> None:
    # Both the echo provider and the fake OpenAI server call a tool per `/tool` line.
    message = {"content": "what time is it?\n/tool current_time"}
    with service.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()["id"]
        url = f"/v1/conversations/{conversation}/messages"
        whole = client.post(url, json=message)
        streamed = client.post(url, json=message, headers={"Accept": "text/event-stream"})

    steps = whole.json()["steps"]
    assert [s["role"] for s in steps] == ["assistant", "tool", "assistant"]
    assert steps[0]["tool_calls"][0]["name"] == "current_time"
    assert steps[1]["content"].startswith(str(time.gmtime().tm_year))
    assert whole.json()["usage"]["prompt_tokens"] > 0
    events = _sse(streamed.text)
    assert [name for name, _ in events][:2] == ["tool_call", "tool_result"]
    assert events[-1][0] == "done"
    assert events[-1][1]["stop_reason"] == "completed"


@pytest.mark.parametrize("width", [1000, 390], ids=["desktop", "phone"])
def test_the_playground_shows_a_tool_call_its_result_and_the_reply(
    service: Service, width: int
) -> None:
    # PLAYGROUND_SCREENSHOT=docs/playground.png writes the picture the template's docs show.
    with chromium_page(width) as page:
        page.goto(f"{service.base_url}/playground")
        page.fill("#key", service.api_key)
        # Shift+Enter starts a new line; Enter sends.
        page.type("#message", "What time is it?")
        page.keyboard.press("Shift+Enter")
        page.type("#message", "/tool current_time")
        page.keyboard.press("Enter")
        page.wait_for_selector("#status:has-text('done')", timeout=20_000)
        # Every control of the header within the screen's width, none cut off.
        boxes = [page.locator(selector).bounding_box() for selector in ("#key", "#new")]
        icon = page.request.get(f"{service.base_url}/favicon.ico")
        call = page.inner_text(".tool-call")
        result = page.inner_text(".tool-result")
        reply = page.locator(".reply").last.inner_text()
        if (target := os.environ.get("PLAYGROUND_SCREENSHOT")) and width == 1000:
            page.screenshot(path=target)

    assert all(box is not None and box["x"] + box["width"] <= width for box in boxes), boxes
    assert (icon.status, icon.headers["content-type"]) == (200, "image/svg+xml")
    assert call.startswith("→ current_time")
    stamp = datetime.fromisoformat(result.removeprefix("← current_time: "))
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert "What time is it?" in reply
    if service.project.answers.get("llm_provider", "echo") == "echo":
        # The echo model's reply lists each tool's result; the fake OpenAI one does not.
        assert stamp.isoformat(timespec="seconds") in reply


# AG-UI's own client (`@ag-ui/client`'s HttpAgent, on Node), as a frontend drives the endpoint.
AGUI_CLIENT = Path(__file__).parent / "agui"


@pytest.fixture(scope="module")
def agui_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client's package, installed from its lock file into a directory of its own."""
    node, npm = shutil.which("node"), shutil.which("npm")
    need(node is not None and npm is not None, "Node.js and npm (bash .ci/run installs them)")
    assert npm is not None
    directory = tmp_path_factory.mktemp("agui-client")
    for name in ("package.json", "package-lock.json", "rerun.mjs", "frontend_tool.mjs"):
        shutil.copy(AGUI_CLIENT / name, directory / name)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        env={**os.environ, "NODE_ENV": "production"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return directory


def _agui_script(
    service: Service, agui_client: Path, script: str
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run one of tests/boot/agui's scripts on a new conversation: its id, and how it ran."""
    with service.client() as client:
        conversation = client.post("/v1/conversations", json={"title": "ag-ui"}).json()["id"]
    ran = subprocess.run(
        ["node", script, service.base_url, service.api_key, conversation],
        cwd=agui_client,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return conversation, ran


@pytest.mark.parametrize("service", BOOTED[:1], indirect=True)
def test_a_thread_run_twice_by_httpagent_stores_its_user_message_once(
    service: Service, agui_client: Path
) -> None:
    conversation, ran = _agui_script(service, agui_client, "rerun.mjs")
    with service.client() as client:
        stored = client.get(f"/v1/conversations/{conversation}").json()["messages"]

    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)
    reply = "[You are a helpful assistant.] hi"
    assert runs["first"] == runs["second"] == [["assistant", reply]]
    assert runs["thread"] == [["user", "hi"], ["assistant", reply], ["assistant", reply]]
    assert [[m["role"], m["content"]] for m in stored] == runs["thread"]


@pytest.mark.parametrize("service", BOOTED[:1], indirect=True)
def test_a_frontend_tool_of_httpagent_is_run_by_it_and_its_result_answered(
    service: Service, agui_client: Path
) -> None:
    conversation, ran = _agui_script(service, agui_client, "frontend_tool.mjs")
    with service.client() as client:
        stored = client.get(f"/v1/conversations/{conversation}").json()["messages"]

    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)
    ask = 'weather?\n/tool weather {"city": "Paris"}'
    reply = "[You are a helpful assistant.] weather?\nweather: sunny in Paris"
    # The client ran the one call left to it, with the model's arguments.
    assert runs["ran"] == [{"id": "echo_call_1", "name": "weather", "args": {"city": "Paris"}}]
    assert runs["owedAfter"] == []
    assert runs["first"] == [["assistant", "", ["weather"]]]
    assert runs["second"] == [["assistant", reply, []]]
    assert runs["thread"] == [
        ["user", ask, []],
        ["assistant", "", ["weather"]],
        ["tool", "sunny in Paris", []],
        ["assistant", reply, []],
    ]
    assert [[m["role"], m["content"]] for m in stored] == [
        ["user", ask],
        ["assistant", ""],
        ["tool", "sunny in Paris"],
        ["assistant", reply],
    ]
    assert [call["name"] for call in stored[1]["tool_calls"]] == ["weather"]


def test_an_idle_connection_stays_open_past_uvicorns_default_five_seconds(
    service: Service,
) -> None:
    """A proxy in front reuses idle connections for up to its own timeout (60 s for
    ingress-nginx and AWS load balancers): one closed by the api sooner answers a 502."""
    url = httpx.URL(service.base_url)
    # http.client keeps its one socket and never opens another while it holds it: a second
    # request on a connection the api closed fails (RemoteDisconnected) instead of retrying.
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    answers = []
    try:
        for pause in (0, 7):
            time.sleep(pause)
            connection.request("GET", "/health/live")
            answers.append(connection.getresponse().read())
        reused = connection.sock is not None
    finally:
        connection.close()

    assert answers == [b'{"status":"alive"}'] * 2
    assert reused


def test_requests_without_a_key_are_refused(service: Service) -> None:
    response = httpx.get(f"{service.base_url}/v1/conversations")

    assert response.status_code == 401


def test_file_upload_and_download_over_http(service: Service) -> None:
    data = b"quarterly numbers: 42\n"
    with service.client() as client:
        uploaded = client.post(
            "/v1/files", files={"file": ("../../report.txt", data, "text/plain")}
        )
        downloaded = client.get(f"/v1/files/{uploaded.json()['id']}")

    assert uploaded.status_code == 201
    assert uploaded.json()["filename"] == "report.txt"
    assert downloaded.content == data
    assert uploaded.json()["sha256"] == hashlib.sha256(data).hexdigest()


def _request_records(log_file: Path, request_id: str) -> list[dict[str, Any]]:
    """The request's log records; the line is written just after the response is sent."""
    deadline = time.monotonic() + 5
    while True:
        records = [json.loads(line) for line in log_file.read_text().splitlines()]
        found = [r for r in records if r.get("request_id") == request_id and "path" in r]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_logs_are_json_lines_with_request_ids(service: Service) -> None:
    response = httpx.get(f"{service.base_url}/health", headers={"X-Request-ID": "boot-check-1"})

    assert response.headers["x-request-id"] == "boot-check-1"
    records = _request_records(service.logs_dir / "app.log", "boot-check-1")
    assert [(r["path"], r["status"]) for r in records] == [("/health", 200)]
    assert service.api.output().count("boot-check-1") >= 1


def test_redis_outage_gives_503_fast_and_recovers_without_restart(
    service: Service, redis_server: RedisServer
) -> None:
    redis_server.stop()
    try:
        started = time.monotonic()
        down = httpx.get(f"{service.base_url}/health", timeout=5)
        elapsed = time.monotonic() - started
        live = httpx.get(f"{service.base_url}/health/live")
    finally:
        redis_server.start()
    back = httpx.get(f"{service.base_url}/health", timeout=5)

    assert down.status_code == 503
    assert (down.json()["status"], down.json()["redis"]) == ("unhealthy", "disconnected")
    assert down.json()["database"] == "connected"
    assert elapsed < 2
    assert live.status_code == 200
    assert back.status_code == 200
    assert back.json()["redis"] == "connected"


# The default combination's whole suite runs inside its image (tests/compose/test_stack.py): the
# same code on the same Python, its coverage bound checked there. On the host, with `uv run`,
# the other combination's does, without coverage (it measures the same app/ again, and costs a
# fifth of the run).
@pytest.mark.parametrize("service", BOOTED[1:], indirect=True)
def test_generated_test_suite_passes(
    service: Service,
    postgres: PostgresServer,
    redis_server: RedisServer,
    request: pytest.FixtureRequest,
) -> None:
    database = postgres.create_database(f"suite_{request.node.callspec.indices['service']}")
    env = project_env(TEST_DATABASE_URL=database, TEST_REDIS_URL=redis_server.url_for(1), CI="true")

    result = service.project.uv(
        "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider", env=env
    )

    assert_only_passes(result.stdout)


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    service: Service, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The other combinations serve the same routes from the same code: a few examples each
    # prove their server (its Python, PostgreSQL, Redis and provider) answers every operation.
    examples = "25" if request.node.callspec.indices["service"] == 0 else "5"
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{service.base_url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--header",
        f"Authorization: Bearer {service.api_key}",
        "--max-examples",
        examples,
        "--seed",
        "20261127",
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",
        "--report-dir",
        str(tmp_path),
    ]

    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    assert result.returncode == 0, result.stdout[-8000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, result.stdout[-4000:]


def test_sigterm_stops_gracefully_and_logs_the_shutdown(service: Service) -> None:
    code = service.api.stop()

    assert code == 0
    assert "shutting down" in service.api.output()
    assert "resources closed" in service.api.output()


def test_bad_config_stops_start_up_with_one_line_naming_the_key(
    service: Service, tmp_path: Path
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("llm:\n  providr: echo\n")
    env = {**service.api.env, "CONFIG_FILE": str(bad)}
    uvicorn = str(service.project.path / ".venv/bin/uvicorn")

    result = service.project.run(
        uvicorn, "--factory", "app.main:create_app", "--port", "1", env=env, check=False
    )

    assert result.returncode != 0
    assert (
        "configuration error: invalid settings: config.yaml: llm.providr: "
        "Extra inputs are not permitted"
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"DATABASE_URL": "postgresql://app@127.0.0.1:1/app", "DATABASE_PASSWORD_FILE": "/nope"},
            "configuration error: DATABASE_PASSWORD_FILE=/nope cannot be read: "
            "No such file or directory",
        ),
        (
            {"DATABASE_URL": "not a url"},
            "configuration error: invalid settings: DATABASE_URL: must be a postgresql:// URL",
        ),
    ],
    ids=["unreadable-password-file", "bad-url"],
)
def test_bad_settings_stop_migrations_with_the_apis_one_line(
    service: Service, settings: dict[str, str], message: str
) -> None:
    alembic = str(service.project.path / ".venv/bin/alembic")

    result = service.project.run(
        alembic, "upgrade", "head", env={**service.api.env, **settings}, check=False
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr


def test_concurrent_migration_runs_migrate_once(
    service: Service, postgres: PostgresServer, request: pytest.FixtureRequest
) -> None:
    database = f"race_{request.node.callspec.indices['service']}"
    env = {**service.api.env, "DATABASE_URL": postgres.create_database(database)}
    alembic = [str(service.project.path / ".venv/bin/alembic"), "upgrade", "head"]

    runs = [
        subprocess.Popen(alembic, cwd=service.project.path, env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[1].decode() for run in runs]

    head = service.project.run(alembic[0], "heads", env=env).stdout.split()[0]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert postgres.query("SELECT version_num FROM alembic_version", database=database) == head
    # The first migration ran once: the other runs found the head reached.
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1

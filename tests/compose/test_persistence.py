"""Data in named volumes outlives containers; only `down -v` removes it. A run awaiting
approval is such data: it outlives the whole stack and goes on once approved."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import yaml

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness import docker as lab
from tests.harness.runs import start_run, wait_for_run
from tests.harness.stack import Stack

VOLUMES = ("postgres_data", "redis_data", "api_logs", "uploads")


def _seed(stack: Stack) -> tuple[str, str]:
    with stack.client() as client:
        conversation = client.post("/v1/conversations", json={"title": "keep me"}).json()
        uploaded = client.post("/v1/files", files={"file": ("k.txt", b"kept", "text/plain")})
    stack.redis_cli("set", "persisted-key", "kept-value")
    return conversation["id"], uploaded.json()["id"]


@contextmanager
def _approval_required(stack: Stack) -> Iterator[None]:
    """The stack's config.yaml, while in this block, gates current_time behind approval."""
    path = stack.project.path / "config" / "config.yaml"
    shipped = path.read_text()
    config = yaml.safe_load(shipped)
    config["agent"]["require_approval"] = ["current_time"]
    path.write_text(yaml.safe_dump(config))
    try:
        yield
    finally:
        path.write_text(shipped)


def _awaiting_run(stack: Stack) -> dict[str, Any]:
    with stack.client() as client:
        run = start_run(client, "time?\n/tool current_time")
        return wait_for_run(client, run["id"], frozenset({"awaiting_approval"}))


def _approve(stack: Stack, run: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Approve the run's waiting call; return the run once finished, and its messages."""
    (call,) = run["pending_approvals"]
    decision = {"decisions": [{"tool_call_id": call["id"], "approved": True}]}
    with stack.client() as client:
        decided = client.post(f"/v1/runs/{run['id']}/approvals", json=decision)
        assert decided.status_code == 200, decided.text
        finished = wait_for_run(client, run["id"])
        messages = client.get(f"/v1/conversations/{run['conversation_id']}").json()["messages"]
    return finished, [(m["role"], m["content"]) for m in messages]


def _redis_get(stack: Stack, key: str) -> str:
    return stack.redis_cli("get", key)


def _project_volumes(stack: Stack) -> list[str]:
    label = f"label=com.docker.compose.project={stack.name}"
    return lab.docker("volume", "ls", "-q", "--filter", label).stdout.split()


def test_data_survives_down_and_up_and_a_new_db_container(fresh_stack: Stack) -> None:
    stack = fresh_stack
    with _approval_required(stack):
        stack.up()
        conversation_id, file_id = _seed(stack)
        waiting = _awaiting_run(stack)
        # Redis writes its append-only file every second; make the key durable before stopping.
        stack.redis_cli("bgrewriteaof")

        stack.compose("down")
        stack.up()
        with stack.client() as client:
            after_down = client.get(f"/v1/conversations/{conversation_id}")
            file_after_down = client.get(f"/v1/files/{file_id}")
            still_waiting = client.get(f"/v1/runs/{waiting['id']}").json()
        redis_value = _redis_get(stack, "persisted-key")
        finished, messages = _approve(stack, waiting)

    lab.docker("rm", "-f", stack.container("db"))
    stack.up()
    with stack.client() as client:
        after_new_db = client.get(f"/v1/conversations/{conversation_id}")

    assert after_down.status_code == 200
    assert after_down.json()["title"] == "keep me"
    assert file_after_down.content == b"kept"
    assert redis_value == "kept-value"
    assert still_waiting == waiting
    assert (finished["status"], finished["stop_reason"]) == ("succeeded", "completed")
    assert [role for role, _ in messages] == ["user", "assistant", "tool", "assistant"]
    # The approved call ran: its result is the time, not an error.
    assert datetime.fromisoformat(messages[2][1]).tzinfo is not None
    assert after_new_db.status_code == 200
    assert sorted(v.removeprefix(f"{stack.name}_") for v in _project_volumes(stack)) == sorted(
        VOLUMES
    )


# `down -v` and a missing bind-mounted file are the engine's and compose's doing, the same for
# each flavor: the first variant only. Each flavor's data survives in the test above.
@FIRST_VARIANT_ONLY
def test_down_with_volumes_wipes_all_four(fresh_stack: Stack) -> None:
    stack = fresh_stack
    stack.up()
    conversation_id, _ = _seed(stack)
    assert len(_project_volumes(stack)) == 4

    stack.compose("down", "-v")
    remaining = _project_volumes(stack)
    stack.up()
    with stack.client() as client:
        gone = client.get(f"/v1/conversations/{conversation_id}")
    listed = json.loads(lab.docker("volume", "inspect", stack.volume("postgres_data")).stdout)

    assert remaining == []
    assert gone.status_code == 404
    assert _redis_get(stack, "persisted-key") == ""
    assert listed[0]["Mountpoint"].startswith("/var/lib/docker/volumes/")


@FIRST_VARIANT_ONLY
def test_missing_config_file_stops_the_stack_and_creates_no_directory(
    fresh_stack: Stack,
) -> None:
    stack = fresh_stack
    config = stack.project.path / "config" / "config.yaml"
    moved = config.with_name("config.yaml.moved")
    config.rename(moved)
    try:
        result = stack.compose("up", "-d", "--wait", "--no-build", check=False)
        created = config.exists()
    finally:
        if config.is_dir():
            config.rmdir()
        moved.rename(config)

    assert result.returncode != 0
    assert "config.yaml" in result.stderr
    assert not created

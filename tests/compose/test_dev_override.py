"""Development override: the source is bind-mounted, so a host edit is live without a rebuild."""

import time

import httpx

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness.stack import DEV_FILES, Stack

RELOAD_SECONDS = 30.0

# The default answers only: compose.override.yaml takes no answer, and a valkey stack boots in
# every other module (tests/render/test_compose_file.py checks that the override is the same for
# each variant).
pytestmark = FIRST_VARIANT_ONLY


def _reply(stack: Stack) -> str:
    with stack.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()
        response = client.post(
            f"/v1/conversations/{conversation['id']}/messages", json={"content": "hi"}
        )
    return str(response.json()["assistant_message"]["content"])


def _reply_after_reload(stack: Stack, expected: str) -> str:
    """Wait (bounded) for uvicorn --reload to restart the worker, then ask again."""
    deadline = time.monotonic() + RELOAD_SECONDS
    reply = ""
    while time.monotonic() < deadline:
        try:
            reply = _reply(stack)
        except (httpx.TransportError, KeyError, ValueError):
            reply = ""
        if reply == expected:
            break
        time.sleep(0.5)
    return reply


def test_host_edit_changes_a_response_without_rebuild(fresh_stack: Stack) -> None:
    stack = fresh_stack
    source = stack.project.path / "app" / "llm" / "echo.py"
    original = source.read_text()
    stack.up(files=DEV_FILES)
    image_before = stack.inspect("api")["Image"]
    before = _reply(stack)
    anchor = 'f"[{system}] {text}"'
    assert anchor in original, "the echo provider's reply format moved; update this test"
    try:
        source.write_text(original.replace(anchor, 'f"<{system}> {text}"'))
        after = _reply_after_reload(stack, "<You are a helpful assistant.> hi")
    finally:
        source.write_text(original)

    assert before == "[You are a helpful assistant.] hi"
    assert after == "<You are a helpful assistant.> hi"
    assert stack.inspect("api")["Image"] == image_before
    mounts = {m["Destination"]: m for m in stack.inspect("api")["Mounts"]}
    assert mounts["/app/app"]["Type"] == "bind"

"""Background runs as a client sees them, for the tiers that drive a real api (boot, compose)."""

import time
from typing import Any

import httpx

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
# Far longer than a run needs: a failure is a hang, not a slow machine.
RUN_SECONDS = 90.0


def start_run(client: httpx.Client, content: str) -> dict[str, Any]:
    """Start a run on a new conversation; return it as the api answered (queued)."""
    conversation = client.post("/v1/conversations", json={}).json()["id"]
    response = client.post(f"/v1/conversations/{conversation}/runs", json={"content": content})
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


def wait_for_run(
    client: httpx.Client, run_id: str, statuses: frozenset[str] = FINISHED
) -> dict[str, Any]:
    """Poll the run until its status is one of `statuses`; return it then."""
    deadline = time.monotonic() + RUN_SECONDS
    now: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        now = response.json()
        if now["status"] in statuses:
            return now
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not reach {sorted(statuses)}: {now}")

import json
import logging

import pytest
from httpx import AsyncClient

from app.config.settings import Settings


def _records(settings: Settings) -> list[dict[str, object]]:
    lines = (settings.logs_dir / "app.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_request_id_is_echoed_and_logged_as_json(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "trace-42"})

    assert response.headers["x-request-id"] == "trace-42"
    request_logs = [r for r in _records(settings) if r.get("path") == "/health"]
    assert request_logs[-1]["request_id"] == "trace-42"
    assert request_logs[-1]["status"] == 200
    assert set(request_logs[-1]) == {
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
    }


async def test_successful_probes_and_scrapes_are_not_logged_but_failures_are(
    client: AsyncClient, settings: Settings
) -> None:
    for path in ("/health/live", "/metrics"):
        assert (await client.get(path)).status_code == 200
    refused = await client.post("/health/live")
    await client.get("/health")

    logged = [(r["method"], r["path"]) for r in _records(settings) if "path" in r]
    assert refused.status_code == 405
    assert ("GET", "/health/live") not in logged
    assert ("GET", "/metrics") not in logged
    assert ("POST", "/health/live") in logged
    assert ("GET", "/health") in logged


@pytest.mark.parametrize("given", ["", "has spaces", "x" * 65, "new\nline"])
async def test_unsafe_request_ids_are_replaced(client: AsyncClient, given: str) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": given})

    assert response.headers["x-request-id"] != given
    assert len(response.headers["x-request-id"]) == 32


async def test_uvicorn_records_stay_plain_json(client: AsyncClient, settings: Settings) -> None:
    # As uvicorn logs its start-up: the message plus a copy with ANSI colours for its console.
    colored = "Started server process [\x1b[36m%d\x1b[0m]"
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 7, extra={"color_message": colored}
    )

    lines = (settings.logs_dir / "app.log").read_text().splitlines()
    started = [json.loads(line) for line in lines if "Started server process" in line]
    assert started[-1]["message"] == "Started server process [7]"
    assert "color_message" not in started[-1]
    assert not any("\x1b" in line or "\\u001b" in line for line in lines)

import json
import logging

import pytest
from httpx import AsyncClient

from app.core.config import Settings


async def test_request_id_is_echoed_and_logged_as_json(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "trace-42"})

    assert response.headers["x-request-id"] == "trace-42"
    records = [
        json.loads(line) for line in (settings.logs_dir / "app.log").read_text().splitlines()
    ]
    request_logs = [r for r in records if r.get("path") == "/health/live"]
    assert request_logs[-1]["request_id"] == "trace-42"
    assert request_logs[-1]["status"] == 200
    assert {"time", "level", "logger", "message"} <= set(request_logs[-1])


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

import json

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

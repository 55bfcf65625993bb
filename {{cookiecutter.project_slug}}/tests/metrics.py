"""Reading metrics as Prometheus does: GET /metrics without a key, then the text it returns."""

from typing import get_args

from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.metrics import AdmissionReason


async def scrape(client: AsyncClient) -> str:
    """The api's /metrics, fetched with no Authorization header, as a scraper sends it."""
    request = client.build_request("GET", "/metrics")
    del request.headers["Authorization"]
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def sample(exposition: str | bytes, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly these labels, or None if there is none."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def admission_refusals(exposition: str) -> dict[str, float]:
    """The admission refusals /metrics counted, by reason (those that happened)."""
    name = "admission_rejections_total"
    counts = {r: sample(exposition, name, reason=r) for r in get_args(AdmissionReason)}
    return {reason: count for reason, count in counts.items() if count}

"""The api's metrics over HTTP: requests counted by route template, and GET /metrics.

/metrics needs no API key and is not rate limited (Prometheus sends none); it is reachable
wherever the api is, so a proxy in front of a published api blocks it (see the README).
"""

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as instrumentations
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.metrics import HTTP_BUCKETS, Metrics
from app.deps import MetricsDep

METRICS_PATH = "/metrics"
router = APIRouter(tags=["metrics"])


@router.get(METRICS_PATH, include_in_schema=False)
async def scrape(metrics: MetricsDep) -> Response:
    """Every metric of the api, in Prometheus' text format."""
    # The classic text format, which every Prometheus reads (exposition() writes it).
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


def instrument(app: FastAPI, metrics: Metrics) -> None:
    """Count every request by route template, method and status, time it, and serve /metrics.

    Call it after the other middleware is added: it must be outermost, to count what they
    answer themselves (401 and 413 before the route, 503 when busy).
    """
    registry = metrics.registry
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        # Unknown paths share one handler, "none": a scan of random URLs adds no series.
        should_group_untemplated=True,
        excluded_handlers=[f"^{METRICS_PATH}$"],
        registry=registry,
    )
    instrumentator.add(
        instrumentations.requests(registry=registry),
        instrumentations.latency(
            should_include_status=False, buckets=HTTP_BUCKETS, registry=registry
        ),
    )
    instrumentator.instrument(app)
    # The instrumentator's own in-progress gauge goes to the global registry whatever it is
    # given, and a second app in the process (tests build many) then fails to start.
    app.add_middleware(InProgressMiddleware, metrics=metrics)
    app.include_router(router)


class InProgressMiddleware:
    """Count the requests being served (the scrapes of /metrics aside)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.gauge = metrics.http_in_progress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        with self.gauge.track_inprogress():
            await self.app(scope, receive, send)

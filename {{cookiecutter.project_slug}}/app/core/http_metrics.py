"""The api's metrics over HTTP: every request counted by route template, and GET /metrics.

/metrics needs no API key and is not rate limited (Prometheus sends none); it is reachable
wherever the api is, so a proxy in front of a published api blocks it (see the README).
"""

from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.logging import RequestLogMiddleware
from app.core.metrics import Metrics

METRICS_PATH = "/metrics"
# The handler label of requests no route matched: a scan of random URLs adds no series.
UNMATCHED = "none"
# More routes than an app has: past it, templates are looked up on every request instead.
MAX_ROUTES = 1000


def instrument(app: FastAPI, metrics: Metrics) -> None:
    """Log, count and time every request, and serve /metrics. In place of RequestLogMiddleware,
    added after the other middleware: it must be outermost, to count what they answer
    themselves (401 and 413 before the route, 503 when busy)."""
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    # The Metrics object of this app, which its lifespan also hands to the resources: core
    # serves it without reaching up into the app's dependencies.
    @app.get(METRICS_PATH, include_in_schema=False, tags=["metrics"])
    async def scrape() -> Response:
        # The classic text format, which every Prometheus reads (exposition() writes it).
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


class HttpMetricsMiddleware(RequestLogMiddleware):
    """Also count requests (but /metrics scrapes) by route template, method and status, time
    them and count those in flight, from the status and time the request log takes.

    The route is the router's own match (scope["route"]), its template looked up once per
    route: matching every request against every route again, as
    prometheus-fastapi-instrumentator does, would cost a cheap route more than its own work.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.requests = metrics.http_requests
        self.duration = metrics.http_duration
        self.in_progress = metrics.http_in_progress
        # By id(): FastAPI's routes are unhashable. Each entry keeps its route alive, so no
        # other object takes its id while it is here. One entry per route of the app.
        self._templates: dict[int, tuple[BaseRoute, str]] = {}
        # The labelled series of each (handler, method, status) seen, so that a request
        # skips prometheus-client's label lookup (a lock and a validation each). Bounded:
        # routes x methods x statuses.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counted = scope["type"] == "http" and scope["path"] != METRICS_PATH
        with self.in_progress.track_inprogress() if counted else nullcontext():
            await super().__call__(scope, receive, send)

    def served(self, scope: Scope, status: int, seconds: float) -> None:
        super().served(scope, status, seconds)
        if scope["path"] == METRICS_PATH:
            return
        handler, method = self._handler(scope), scope["method"]
        if (series := self._series.get((handler, method, status))) is None:
            series = self._series[handler, method, status] = (
                self.requests.labels(handler, method, str(status)),
                self.duration.labels(handler, method),
            )
        series[0].inc()
        series[1].observe(seconds)

    def _handler(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        known = self._templates.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        template = route_template(scope["app"].routes, route) or UNMATCHED
        if len(self._templates) < MAX_ROUTES:
            self._templates[id(route)] = (route, template)
        return template


def route_template(routes: Iterable[BaseRoute], route: BaseRoute) -> str | None:
    """The path template, with its router's prefix, under which an app serves a route (here,
    not a dependency on prometheus-fastapi-instrumentator for a dozen lines).

    FastAPI keeps an included router whole and puts the route as declared, without the
    prefix, in scope["route"]: its context carries the prefixed path. A route included under
    two prefixes is named by the first.
    """
    for candidate in routes:
        contexts: Any = getattr(candidate, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                if context.original_route is route:
                    return str(context.path)
        elif candidate is route:
            path = getattr(route, "path", None)
            return path if isinstance(path, str) else None
    return None

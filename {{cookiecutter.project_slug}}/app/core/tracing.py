"""OpenTelemetry traces of the api, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

Off, nothing is installed, not even imported (OpenTelemetry would hold about 15 MB in every
process that never traces). On, each request is one trace: its server span, and as children
the SQLAlchemy queries, Redis commands and outgoing HTTP calls made while serving it. Spans
leave in batches over OTLP/HTTP, as the standard OTEL_EXPORTER_OTLP_* variables and
OTEL_SERVICE_NAME say.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Scrapes and liveness probes, every few seconds, would bury the requests worth reading.
UNTRACED_PATHS = "/metrics$,/health/live$"


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment names an OTLP endpoint (and does not disable the SDK)."""
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return not disabled and any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


class Tracing:
    """A tracer provider of the api's own (the global one is left alone), and the
    instrumentation that feeds it."""

    def __init__(self, name: str, version: str, exporter: "SpanExporter | None" = None) -> None:
        """Spans go to the exporter, by default to the OTLP endpoint the environment names."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {SERVICE_VERSION: version}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes[SERVICE_NAME] = name
        self.provider = TracerProvider(resource=Resource.create(attributes))
        self.provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))

    def instrument_app(self, app: FastAPI) -> None:
        """Make a server span of every request (before the app starts: it adds middleware)."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=UNTRACED_PATHS,
            # One span per request, not one more per body chunk received or sent.
            exclude_spans=["receive", "send"],
        )

    @contextmanager
    def instrumented(self, engine: AsyncEngine) -> Iterator[None]:
        """Trace the engine's queries and every Redis command and HTTP request while inside
        (by class: the rate limiter, the run queue and the SDKs make clients of their own);
        then flush the spans still buffered and stop."""
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
        from opentelemetry.instrumentation.httpx import (
            HTTPX2ClientInstrumentor,
            HTTPXClientInstrumentor,
        )
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        instrumentors: list[tuple[Any, dict[str, Any]]] = [
            # The instrumentation declares SQLAlchemy below 2.1, which it predates; it works
            # with 2.1 (the tests see its spans), so its version check is skipped.
            (SQLAlchemyInstrumentor(), {"engine": engine.sync_engine, "skip_dep_check": True}),
            (RedisInstrumentor(), {}),
            (AioHttpClientInstrumentor(), {}),  # the openai SDK's transport
            (HTTPX2ClientInstrumentor(), {}),  # the MCP client's
            (HTTPXClientInstrumentor(), {}),  # the http_get tool's
        ]
        for instrumentor, options in instrumentors:
            instrumentor.instrument(tracer_provider=self.provider, **options)
        try:
            yield
        finally:
            for instrumentor, _ in reversed(instrumentors):
                instrumentor.uninstrument()
            self.provider.shutdown()

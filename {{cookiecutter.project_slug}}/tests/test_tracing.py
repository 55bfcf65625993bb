"""OpenTelemetry traces: off by default, one trace per request when an endpoint is set."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.settings import Settings
from app.core.metadata import project_metadata
from app.core.tracing import ENDPOINT_VARIABLES, wanted
from app.main import create_app
from tests.conftest import make_settings, serve
from tests.fake_openai import FakeOpenAI

MESSAGES_ROUTE = "/v1/conversations/{conversation_id}/messages"


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing is off unless a test turns it on."""
    for name in (*ENDPOINT_VARIABLES, "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


def _installed() -> dict[str, bool]:
    """Which instrumentation is in place, by the instrumentors' flags and by the wrappers."""
    return {
        "sqlalchemy": SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry,
        "redis": RedisInstrumentor().is_instrumented_by_opentelemetry,
        "httpx": HTTPXClientInstrumentor().is_instrumented_by_opentelemetry,
        "httpx2": HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry,
        "Redis.execute_command": hasattr(Redis.execute_command, "__wrapped__"),
        "httpx transport": hasattr(httpx.AsyncHTTPTransport.handle_async_request, "__wrapped__"),
    }


async def test_one_trace_spans_a_request_its_queries_and_its_model_call(
    tmp_path: Path, migrated: str, redis_url: str, fake_openai: FakeOpenAI
) -> None:
    llm = {"provider": "openai", "base_url": fake_openai.base_url, "max_retries": 0}
    settings = make_settings(tmp_path, migrated, redis_url, llm=llm)
    exporter = InMemorySpanExporter()
    # The app's own engine (no test transaction): its queries are the ones traced.
    async for client in serve(settings, None, span_exporter=exporter):
        conversation = (await client.post("/v1/conversations", json={})).json()["id"]
        url = f"/v1/conversations/{conversation}/messages"
        reply = await client.post(url, json={"content": "hello"})
        await client.delete(f"/v1/conversations/{conversation}")
        during = _installed()
    after = _installed()  # the lifespan's end flushed the spans and removed the wrappers

    assert reply.status_code == 201
    spans = exporter.get_finished_spans()
    server = next(
        s for s in spans if s.attributes and s.attributes.get("http.route") == MESSAGES_ROUTE
    )
    trace = [
        s
        for s in spans
        if s.context and server.context and s.context.trace_id == server.context.trace_id
    ]
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    ids = {s.context.span_id for s in trace if s.context}
    assert all(s.parent is not None and s.parent.span_id in ids for s in trace if s is not server)
    queries = [s for s in trace if _attribute(s, "db.system", "db.system.name") == "postgresql"]
    commands = [s for s in trace if _attribute(s, "db.system", "db.system.name") == "redis"]
    model = [
        s for s in trace if "/v1/chat/completions" in str(_attribute(s, "url.full", "http.url"))
    ]
    assert len(queries) >= 3  # the conversation, the history, the stored steps
    assert commands  # the rate limit
    assert len(model) == 1
    assert model[0].kind is SpanKind.CLIENT
    assert all(during.values())
    assert not any(after.values())


def _attribute(span: ReadableSpan, *names: str) -> Any:
    attributes = span.attributes or {}
    return next((attributes[name] for name in names if name in attributes), None)


async def test_tracing_is_off_without_an_endpoint(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert not any(_installed().values())
    middleware = [getattr(m.cls, "__name__", "") for m in create_app(settings).user_middleware]
    assert "OpenTelemetryMiddleware" not in middleware


class _Collector(ThreadingHTTPServer):
    """A real OTLP/HTTP receiver: keeps every trace export request it is sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.exports: list[ExportTraceServiceRequest] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CollectorHandler(BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/v1/traces":
            self.server.exports.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


async def test_the_standard_endpoint_variable_turns_tracing_on_and_exit_flushes(
    settings: Settings,
    connection: AsyncConnection,
    collector: _Collector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    async for client in serve(settings, connection):
        response = await client.get("/health")
        sent_while_serving = len(collector.exports)

    spans = [
        (resource.resource, span)
        for export in collector.exports
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert response.status_code == 200
    assert sent_while_serving == 0  # batched: sent at exit, not per request
    assert "GET /health" in {span.name for _, span in spans}
    names = {
        a.value.string_value for r, _ in spans for a in r.attributes if a.key == "service.name"
    }
    assert names == {project_metadata()[0]}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
    ],
    ids=["unset", "endpoint", "traces-endpoint", "blank", "sdk-disabled"],
)
def test_an_endpoint_is_what_turns_tracing_on(environ: dict[str, str], on: bool) -> None:
    assert wanted(environ) is on

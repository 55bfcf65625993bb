"""The application factory: `uvicorn --factory app.main:create_app`."""

import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI

from app.api import conversations, errors, files, health, runs, usage
from app.api.a2a import card as a2a_card
from app.api.a2a import router as a2a
from app.api.agui import router as agui
from app.api.mcp_server.router import PATH as MCP_PATH
from app.api.mcp_server.router import McpEndpoint
from app.api.openai import errors as openai_errors
from app.api.openai import router as openai
from app.api.responses import router as responses
from app.config.errors import ConfigError
from app.config.loading import get_settings
from app.config.settings import Settings
from app.core.admission import AdmissionMiddleware
from app.core.http_metrics import instrument
from app.core.logging import RequestLogMiddleware, setup_logging
from app.core.metadata import project_metadata
from app.core.metrics import Metrics
from app.core.security import KeyRing
from app.core.tracing import Tracing, wanted
from app.deps import authorize
from app.files import storage
from app.playground.router import router as playground_router
from app.resources import check_config, open_resources
from app.turns import TurnBuilder

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)
# Every route under it needs an API key.
API_PREFIX = "/v1"


def create_app(
    settings: Settings | None = None, *, span_exporter: "SpanExporter | None" = None
) -> FastAPI:
    """Build the API; an invalid configuration stops start-up with one clear line. Traces go
    to span_exporter (tests), else over OTLP if OTEL_EXPORTER_OTLP_ENDPOINT is set, else nowhere."""
    try:
        settings = settings or get_settings()
        check_config(settings.config)
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    setup_logging(settings.config.logging, settings.logs_dir)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    # The multipart parser spools uploads through tempfile: onto the uploads volume, not
    # /tmp, which in the container is a small tmpfs that counts against its memory.
    tempfile.tempdir = str(storage.prepare_spool(settings.uploads_dir))
    name, version = project_metadata()
    keys = KeyRing.build(settings.api_keys, settings.secret_key)
    metrics = Metrics()
    traced = span_exporter is not None or wanted()
    tracing = Tracing(name, version, span_exporter) if traced else None
    mcp = (
        McpEndpoint(settings.config, name, version) if settings.config.mcp_server.enabled else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with (
            open_resources(settings, metrics) as resources,
            mcp.running() if mcp else nullcontext(),
        ):
            turns = TurnBuilder.over(settings, resources)
            with tracing.instrumented(resources.engine) if tracing else nullcontext():
                logger.info("started", extra={"version": version, "llm": resources.llm.name})
                yield {"resources": resources, "settings": settings, "keys": keys, "turns": turns}
                logger.info("shutting down")

    app = FastAPI(title=name, version=version, lifespan=lifespan)
    app.add_middleware(
        AdmissionMiddleware,
        config=settings.config,
        keys=keys,
        protected_prefix=(API_PREFIX, MCP_PATH),
        metrics=metrics,
        error_body=openai_errors.body_for,
    )
    # After the middleware above, so that the request log (and count) has their answers too.
    if settings.config.metrics.enabled:
        instrument(app, metrics)
    else:
        app.add_middleware(RequestLogMiddleware)
    if tracing is not None:
        tracing.instrument_app(app)
    app.include_router(health.router)
    if settings.playground_enabled:
        app.include_router(playground_router)
    api_dependencies = [Depends(authorize)]
    app.include_router(conversations.router, prefix=API_PREFIX, dependencies=api_dependencies)
    app.include_router(files.router, prefix=API_PREFIX, dependencies=api_dependencies)
    app.include_router(runs.router, prefix=API_PREFIX, dependencies=api_dependencies)
    app.include_router(usage.router, prefix=API_PREFIX, dependencies=api_dependencies)
    app.include_router(agui.router, prefix=API_PREFIX, dependencies=api_dependencies)
    # OpenAI clients take http://host:port/v1 as their base URL, and this key as theirs.
    app.include_router(openai.router, prefix=API_PREFIX, dependencies=api_dependencies)
    app.include_router(responses.router, prefix=API_PREFIX, dependencies=api_dependencies)
    if mcp is not None:
        # Its route resolves the key itself (it hands the caller to the MCP tools).
        app.include_router(mcp.router)
    if settings.config.a2a.enabled:
        # The card is public (it tells a client how to authenticate); the endpoint is not.
        app.include_router(a2a_card.router)
        app.include_router(a2a.router, prefix=API_PREFIX, dependencies=api_dependencies)
    errors.install(app)
    openai_errors.install(app)
    return app

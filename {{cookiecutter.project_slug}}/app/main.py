"""The application factory: `uvicorn --factory app.main:create_app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from app.conversations.router import router as conversations_router
from app.core.body_limit import BodySizeLimitMiddleware
from app.core.config import ConfigError, Settings, get_settings, project_metadata
from app.core.logging import RequestLogMiddleware, setup_logging
from app.core.resources import open_resources
from app.core.security import KeyRing
from app.deps import authorize
from app.files.router import router as files_router
from app.health.router import router as health_router

logger = logging.getLogger(__name__)
MULTIPART_OVERHEAD_BYTES = 16 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; an invalid configuration stops start-up with one clear line."""
    try:
        settings = settings or get_settings()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    setup_logging(settings.config.logging, settings.logs_dir)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    name, version = project_metadata()
    keys = KeyRing.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_resources(settings) as resources:
            logger.info("started", extra={"version": version, "llm": resources.llm.name})
            yield {"resources": resources, "settings": settings, "keys": keys}
            logger.info("shutting down")

    app = FastAPI(title=name, version=version, lifespan=lifespan)
    # Uploads are the largest bodies; multipart framing adds a little to the file itself.
    max_body = settings.config.uploads.max_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body)
    app.add_middleware(RequestLogMiddleware)
    app.include_router(health_router)
    api_dependencies = [Depends(authorize)]
    app.include_router(conversations_router, prefix="/v1", dependencies=api_dependencies)
    app.include_router(files_router, prefix="/v1", dependencies=api_dependencies)
    return app

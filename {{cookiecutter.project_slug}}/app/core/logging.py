"""JSON-lines logs with a request id, to stdout and to a size-rotated file."""

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from logging.handlers import RotatingFileHandler
from pathlib import Path

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.sections import LoggingConfig

LOG_FILE_NAME = "app.log"
# uvicorn adds `color_message` (the message with ANSI colour codes) to its records for its
# own console formatter; in JSON it would repeat the message with escape codes in every line.
LEFT_OUT = [*RESERVED_ATTRS, "color_message", "json_line"]
REQUEST_ID_HEADER = "x-request-id"
# A client-supplied id is echoed only when it is short and harmless in a log line.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Successful probes and scrapes come every few seconds and would bury the requests that
# matter; their failures are still logged. /health is logged: it is what healthchecks call.
QUIET_PATHS = frozenset({"/health/live", "/metrics"})

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
logger = logging.getLogger("app.request")
_installed: list[logging.Handler] = []


class _JsonFormatter(JsonFormatter):
    """JSON lines with the request id, each record formatted once however many handlers
    (stdout, file) write it."""

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "json_line", None)
        if line is None:
            record.request_id = request_id_var.get()
            line = super().format(record)
            record.__dict__["json_line"] = line
        return str(line)


def setup_logging(config: LoggingConfig, logs_dir: Path | None) -> None:
    """Send every log record, uvicorn's included, as JSON to stdout and, given logs_dir, the
    log file (workers give none: several replicas rotating one file would lose lines)."""
    formatter = _JsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        reserved_attrs=LEFT_OUT,
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingFileHandler(
                logs_dir / LOG_FILE_NAME,
                maxBytes=config.file_max_bytes,
                backupCount=config.file_backup_count,
                encoding="utf-8",
            )
        )
    root = logging.getLogger()
    # Replace only our own handlers, so a second call (tests, reloads) neither doubles
    # every line nor removes handlers that others (pytest, for one) installed.
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = handlers
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(config.level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # RequestLogMiddleware logs every request with its id; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    # The MCP SDK and its HTTP client log each request and session id at INFO: a call of
    # an MCP tool would be several lines. Their warnings and errors still come through.
    for name in ("mcp", "httpx2"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(config.level)))


class RequestLogMiddleware:
    """Give each request an id (X-Request-ID), echo it back and log the outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        candidate = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = candidate if _VALID_REQUEST_ID.match(candidate) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.served(scope, status, time.perf_counter() - started)
            request_id_var.reset(token)

    def served(self, scope: Scope, status: int, seconds: float) -> None:
        if status >= 400 or scope["path"] not in QUIET_PATHS:
            extra = {"method": scope["method"], "path": scope["path"], "status": status}
            logger.info("request", extra={**extra, "duration_ms": round(seconds * 1000, 1)})

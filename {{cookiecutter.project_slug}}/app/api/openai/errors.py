"""Every error on the paths OpenAI clients call, in OpenAI's shape: {"error": {"message",
"type", "code", "param"}}. The openai SDKs, and the clients built on them, read the message and
the code from there; from FastAPI's {"detail": ...} they show only "Error code: 401"."""

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from app.api.openai.schemas import ErrorBody, ErrorDetail

# The paths of the OpenAI-compatible api, under the /v1 that clients take as their base URL.
PATHS = ("/v1/chat/", "/v1/models", "/v1/responses")
# OpenAI's error type and code for each status this api answers on those paths.
KINDS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    408: ("invalid_request_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    # A spent budget is insufficient_quota (wire.failed); these are the request rate and the
    # streams or uploads a key holds at once.
    429: ("requests", "rate_limit_exceeded"),
    502: ("server_error", "provider_error"),
    503: ("server_error", "overloaded"),
}


# The names pydantic gives a union's branches in an error's location: types, not fields.
UNION_BRANCH = re.compile(r"^(str|int|float|bool|list|dict|none)$|^[\w-]+\[.*\]$")

# What each status means on these paths, for the OpenAPI document.
MEANINGS = {
    401: "No valid API key",
    404: "Another model, or no such response of this key",
    409: "The response to continue is not the latest of its conversation, or has not ended",
    422: "An invalid request; `param` names the field",
    429: "The key's request rate, streams or budget are spent; see Retry-After",
    502: "The model failed",
    503: "The api is at its bound; retry after Retry-After",
}


def documented(
    *statuses: int, stream: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The responses of an OpenAI path for FastAPI's `responses=`, its errors in OpenAI's
    shape; a streaming route's own (sse.documented) keep their descriptions."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": MEANINGS[status]} for status in statuses
    }
    for status, response in (stream or {}).items():
        responses[status] = {**responses.get(status, {}), **response}
    return responses


def openai_path(path: str) -> bool:
    return path.startswith(PATHS)


def error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body for a status: its type, and its code unless one is given."""
    kind, default_code = KINDS.get(status, ("invalid_request_error", None))
    detail = ErrorDetail(message=message, type=kind, code=code or default_code, param=param)
    return ErrorBody(error=detail).model_dump()


def body_for(path: str, status: int, detail: str) -> dict[str, Any]:
    """The body of an answer the api gives before routing (the admission middleware's)."""
    return error(status, detail) if openai_path(path) else {"detail": detail}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not openai_path(request.url.path):
        return await http_exception_handler(request, exc)
    body = error(exc.status_code, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    """422 as OpenAI says an invalid field: the first error's location as `param` (in
    OpenAI's spelling, messages[0].content), every error in the message."""
    assert isinstance(exc, RequestValidationError)
    if not openai_path(request.url.path):
        return await request_validation_exception_handler(request, exc)
    errors = list(exc.errors())
    message = "; ".join(f"{_param(e['loc'])}: {e['msg']}" for e in errors)
    first = errors[0]
    body = error(422, message, code=first["type"], param=_param(first["loc"]))
    return JSONResponse(body, status_code=422)


def _param(location: tuple[str | int, ...]) -> str:
    path = ""
    for part in location[1:] if location[:1] == ("body",) else location:
        if isinstance(part, str) and UNION_BRANCH.match(part):
            # pydantic names the branch of a union it tried (content.str); OpenAI names
            # the field.
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def install(app: FastAPI) -> None:
    """Answer HTTP errors and invalid requests on the OpenAI paths in OpenAI's shape; every
    other path keeps FastAPI's."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)

"""4xx answers the api builds itself, as clients parse them: 422s naming a field (in
FastAPI's own shape; a client tool named as the agent's among them), the 429 of a spent
budget, and the documented 404 of a row."""

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import Response

from app.agent.loop import Refusal
from app.agent.registry import TOOLS
from app.conversations.service import UnknownFilesError


def field_error(
    kind: str, location: tuple[str | int, ...], message: str, *, part: str = "body"
) -> dict[str, Any]:
    """One error naming a field of the body (or of another part: "query"), shaped as
    FastAPI's own, for what a request's models cannot check alone (a setting, another field,
    another row); raise RequestValidationError with a list of them, so clients parse one
    format."""
    return {"type": kind, "loc": (part, *location), "msg": message}


def refuse_taken_tool_names(
    names: Sequence[str], location: Callable[[int], tuple[str | int, ...]]
) -> None:
    """Refuse (422 tool_name_taken, at location(index)) a client tool named as one of the
    agent's own tools: a call of that name runs here, never on the client."""
    ours = {tool.name for tool in TOOLS}
    for index, name in enumerate(names):
        if name in ours:
            detail = f"{name} is a tool of the agent's own; name yours otherwise"
            raise RequestValidationError([field_error("tool_name_taken", location(index), detail)])


def over_budget(refusal: Refusal) -> HTTPException:
    """A 429 naming the key's budget, with Retry-After to when it starts again."""
    headers = {"Retry-After": str(refusal.retry_after)}
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, refusal.detail, headers=headers)


async def unknown_files(request: Request, exc: Exception) -> Response:
    """A 422 naming each file id of a message that is not the caller's, in the shape of any
    other invalid field, so clients parse one format."""
    assert isinstance(exc, UnknownFilesError)
    errors = [
        {
            **field_error("unknown_file", ("file_ids", index), f"file {file_id} not found"),
            "input": str(file_id),
        }
        for index, file_id in exc.missing
    ]
    return await request_validation_exception_handler(request, RequestValidationError(errors))


class NotFound(BaseModel):
    detail: str


# A path parameter that names a row: {conversation_id}, {run_id}, {file_id}...
_ROW = re.compile(r"\{(\w+)_id\}")


def install(app: FastAPI) -> None:
    """What the api answers and documents beyond what its routes declare: unknown files as
    422, and the 404 of every route whose path names a row, a team's routes included: FastAPI
    documents what a route declares, not what its dependencies raise, and every such route
    answers an id that is not the caller's with 404 (tests/test_ownership.py)."""
    app.add_exception_handler(UnknownFilesError, unknown_files)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema["paths"].items():
            if rows := _ROW.findall(path):
                response = {
                    "description": f"No {' or '.join(rows)} of this key with that id",
                    "content": {"application/json": {"schema": NotFound.model_json_schema()}},
                }
                for operation in operations.values():
                    operation["responses"].setdefault("404", response)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

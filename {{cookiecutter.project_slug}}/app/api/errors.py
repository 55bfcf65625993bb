"""Every 4xx the routers build themselves, as the answers clients parse: 422s naming a field
(in FastAPI's own shape), and the 429 of a spent budget."""

from typing import Any

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError

from app.agent.loop import Refusal
from app.conversations.schemas import MessageCreate
from app.conversations.service import UnknownFilesError


def field_error(kind: str, location: tuple[str | int, ...], message: str) -> dict[str, Any]:
    """One error naming a field of the body, shaped as FastAPI's own, for what a request's
    models cannot check alone (a setting, another field, another row); raise
    RequestValidationError with a list of them, so clients parse one format."""
    return {"type": kind, "loc": ("body", *location), "msg": message}


def unknown_files(body: MessageCreate, exc: UnknownFilesError) -> RequestValidationError:
    """A 422 naming each file id that is not the caller's, in the shape of any other
    invalid field, so clients parse one format."""
    return RequestValidationError(
        [
            {
                **field_error(
                    "unknown_file",
                    ("file_ids", body.file_ids.index(file_id)),
                    f"file {file_id} not found",
                ),
                "input": str(file_id),
            }
            for file_id in exc.missing
        ]
    )


def over_budget(refusal: Refusal) -> HTTPException:
    """A 429 naming the key's budget, with Retry-After to when it starts again."""
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        refusal.detail,
        headers={"Retry-After": str(refusal.retry_after)},
    )

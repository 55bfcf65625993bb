"""Domain errors that more than one router answers, as the answers clients parse."""

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError

from app.agent.loop import Refusal
from app.conversations.schemas import MessageCreate
from app.conversations.service import UnknownFilesError


def unknown_files(body: MessageCreate, exc: UnknownFilesError) -> RequestValidationError:
    """A 422 naming each file id that is not the caller's, in the shape of any other
    invalid field, so clients parse one format."""
    return RequestValidationError(
        [
            {
                "type": "unknown_file",
                "loc": ("body", "file_ids", body.file_ids.index(file_id)),
                "msg": f"file {file_id} not found",
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

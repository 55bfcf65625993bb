"""What an AG-UI run asks of a conversation: its thread, and the new user message.

A client sends its whole view of the thread; the stored conversation is the history the
agent sees, so only the last user message is taken from it.
"""

import uuid

from ag_ui.core import RunAgentInput, TextPart, UserMessage
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.errors import field_error
from app.conversations.schemas import MessageCreate


def check_thread(body: RunAgentInput, conversation_id: uuid.UUID) -> None:
    """Refuse a run whose threadId is not the conversation's id (the client's thread would
    not be the one stored)."""
    try:
        same = uuid.UUID(body.thread_id) == conversation_id
    except ValueError:
        same = False
    if not same:
        detail = f"must be the id of the conversation in the path, {conversation_id}"
        raise RequestValidationError([field_error("thread_mismatch", ("threadId",), detail)])


def user_message(body: RunAgentInput) -> MessageCreate:
    """The last user message of the run, as the message to store and answer."""
    users = [(i, m) for i, m in enumerate(body.messages) if isinstance(m, UserMessage)]
    if not users:
        raise RequestValidationError(
            [field_error("missing", ("messages",), "must hold a user message")]
        )
    index, message = users[-1]
    content = message.content
    if not isinstance(content, str):
        # Only text parts reach the model; images and files are not taken here.
        content = "".join(part.text for part in content if isinstance(part, TextPart))
    try:
        return MessageCreate(content=content)
    except ValidationError as exc:
        location = ("messages", index, "content")
        errors = [field_error(e["type"], location, e["msg"]) for e in exc.errors()]
        raise RequestValidationError(errors) from None

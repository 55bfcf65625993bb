"""What a RunAgentInput brings to the stored conversation: a client sends its whole view of
the thread each run, but the stored conversation is the history the agent sees. So a run
takes its last user message, the results of the client's tools that the conversation waits
for, and the client's tools to offer; each refused with a 422 naming the field."""

import uuid
from collections.abc import Sequence
from typing import Any

from ag_ui.core import RunAgentInput, TextPart, ToolMessage, UserMessage
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.errors import field_error, refuse_taken_tool_names
from app.api.openai.schemas import MAX_CLIENT_TOOLS, FunctionDefinition
from app.conversations import service as conversations
from app.conversations.models import CLIENT_ID_CHARS
from app.conversations.schemas import MAX_MESSAGE_CHARS, MessageCreate
from app.conversations.service import ClientResult
from app.llm.base import ToolSpec

type Location = tuple[str | int, ...]


def check_thread(body: RunAgentInput, conversation_id: uuid.UUID) -> None:
    """Refuse a threadId other than the conversation's id: it is not the thread stored."""
    try:
        same = uuid.UUID(body.thread_id) == conversation_id
    except ValueError:
        same = False
    if not same:
        detail = f"must be the id of the conversation in the path, {conversation_id}"
        raise RequestValidationError([field_error("thread_mismatch", ("threadId",), detail)])


def user_message(body: RunAgentInput) -> tuple[str, MessageCreate]:
    """The last user message of the run: the id the client gave it, and the message."""
    users = [(i, m) for i, m in enumerate(body.messages) if isinstance(m, UserMessage)]
    if not users:
        error = field_error("missing", ("messages",), "must hold a user message")
        raise RequestValidationError([error])
    index, message = users[-1]
    _check_id(message.id, ("messages", index, "id"))
    try:
        return message.id, MessageCreate(content=_text(message.content))
    except ValidationError as exc:
        raise _invalid(exc, ("messages", index)) from None


def client_tools(body: RunAgentInput) -> list[ToolSpec]:
    """The client's tools (an AG-UI Tool is a function as chat completions declare one), as
    the model is offered them; none named as one of the agent's own."""
    tools = body.tools or []
    if len(tools) > MAX_CLIENT_TOOLS:
        detail = f"List should have at most {MAX_CLIENT_TOOLS} items after validation"
        raise RequestValidationError([field_error("too_long", ("tools",), detail)])
    functions = []
    for index, tool in enumerate(tools):
        declared = {"name": tool.name, "description": tool.description}
        if tool.parameters is not None:
            declared["parameters"] = tool.parameters
        try:
            functions.append(FunctionDefinition.model_validate(declared))
        except ValidationError as exc:
            raise _invalid(exc, ("tools", index)) from None
    refuse_taken_tool_names([f.name for f in functions], lambda index: ("tools", index, "name"))
    return [ToolSpec(f.name, f.description, f.parameters) for f in functions]


async def tool_results(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    body: RunAgentInput,
    client_tools: Sequence[ToolSpec],
) -> list[ClientResult]:
    """The results the run brings for the calls of its tools that the conversation waits for,
    in the order of the calls. A tool message answering a call already answered is the
    thread's history (stored); one answering any other call is refused: a client answers only
    its own tools' calls, never the agent's."""
    answers = [(i, m) for i, m in enumerate(body.messages) if isinstance(m, ToolMessage)]
    if not answers:
        return []
    theirs = {spec.name for spec in client_tools}
    pending = [
        call
        for call in await conversations.pending_calls(
            session=session, conversation_id=conversation_id
        )
        if call.name in theirs
    ]
    waiting = {call.id for call in pending}
    others = {m.tool_call_id for _, m in answers if m.tool_call_id not in waiting}
    stored = await conversations.answered_calls(
        session=session, conversation_id=conversation_id, call_ids=others
    )
    taken: dict[str, ClientResult] = {}
    for index, message in answers:
        if message.tool_call_id in waiting:
            # The last answer wins: a model may give a call the id of an earlier one.
            taken[message.tool_call_id] = _result(index, message)
        elif message.tool_call_id not in stored:
            detail = (
                f"tool call {message.tool_call_id} is not a call of your tools (`tools`) "
                "that this conversation waits for"
            )
            location = ("messages", index, "toolCallId")
            raise RequestValidationError([field_error("unknown_tool_call", location, detail)])
    return [taken[call.id] for call in pending if call.id in taken]


def _result(index: int, message: ToolMessage) -> ClientResult:
    _check_id(message.id, ("messages", index, "id"))
    content = _text(message.content)
    if message.error:
        # The client's tool failed: the model is told so, with whatever content came too.
        content = "\n".join(part for part in (f"error: {message.error}", content) if part)
    if len(content) > MAX_MESSAGE_CHARS or "\x00" in content:
        detail = f"must hold at most {MAX_MESSAGE_CHARS} characters and no NUL character"
        location = ("messages", index, "content")
        raise RequestValidationError([field_error("invalid_tool_result", location, detail)])
    return ClientResult(message.tool_call_id, content, message.id)


def _check_id(message_id: str, location: Location) -> None:
    if len(message_id) > CLIENT_ID_CHARS:
        detail = f"String should have at most {CLIENT_ID_CHARS} characters"
        raise RequestValidationError([field_error("too_long", location, detail)])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    # Only text parts reach the model; images and files are not taken here.
    return "".join(part.text for part in content if isinstance(part, TextPart))


def _invalid(exc: ValidationError, location: Location) -> RequestValidationError:
    errors = [field_error(e["type"], (*location, *e["loc"]), e["msg"]) for e in exc.errors()]
    return RequestValidationError(errors)

"""Starting a response: the conversation it adds to (a new one, or the one of the response it
continues), its input stored there, and a queued run that answers it, all in one transaction.

A response continues only the latest response of its conversation, once that one has settled:
the conversation is one line of messages, so a branch from an older response, or a message
sent while one is still being answered, would not be the history the client means (409)."""

from datetime import timedelta
from typing import NoReturn

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.errors import field_error
from app.api.responses.events import SETTLED, response_id
from app.api.responses.items import APPROVAL_PREFIX, Input
from app.conversations.models import Conversation, Message
from app.core.db import insert_new, utcnow
from app.llm.base import OutputFormat, ToolCall, ToolSpec
from app.runs import service as runs
from app.runs.models import Run

TITLE_CHARS = 80


async def start(
    *,
    session: AsyncSession,
    owner: str,
    taken: Input,
    previous: Run | None,
    client_tools: list[ToolSpec],
    output: OutputFormat | None,
    background: bool,
) -> Run:
    """Store the input and a queued run answering it (the caller sends the run to the
    workers); RequestValidationError or a 409 HTTPException, with nothing stored, when the
    input does not fit the response it continues."""
    if previous is None:
        _check_fresh(taken)
        first = next((m.content for m in taken.messages if m.role == "user"), "")
        conversation = Conversation(owner=owner, title=first[:TITLE_CHARS] or None)
        conversation_id = (await insert_new(session, conversation)).id
        approvals = {}
    else:
        conversation_id = previous.conversation_id
        await _check_latest(session, previous)
        approvals = await _continue(session, previous, taken)
    # Apart by a microsecond each: the conversation is read in created_at order.
    now = utcnow()
    for offset, message in enumerate(taken.messages):
        session.add(
            Message(
                conversation_id=conversation_id,
                role=message.role,
                content=message.content,
                tool_calls=[
                    {"id": c.id, "name": c.name, "arguments": c.arguments}
                    for c in message.tool_calls
                ],
                tool_call_id=message.tool_call_id,
                created_at=now + timedelta(microseconds=offset),
            )
        )
    run = Run(
        owner=owner,
        conversation_id=conversation_id,
        queued_at=utcnow(),
        client_tools=[
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in client_tools
        ],
        output_format=None
        if output is None
        else {"name": output.name, "schema": dict(output.schema), "strict": output.strict},
        instructions="\n\n".join(taken.instructions) or None,
        previous_run_id=previous.id if previous else None,
        background=background,
        approvals=approvals,
    )
    session.add(run)
    await session.commit()
    return run


def _check_fresh(taken: Input) -> None:
    """A response that continues none can answer no approval and no call of another."""
    for call_id, index in taken.decided_at.items():
        detail = f"{APPROVAL_PREFIX}{call_id} answers no request: send previous_response_id"
        _refuse("no_previous_response", (index,), detail)
    if taken.outputs_elsewhere:
        detail = (
            f"function_call_output {taken.outputs_elsewhere[0]} answers no function_call of "
            "the input: send the calls, or previous_response_id"
        )
        _refuse("unknown_call", (), detail)
    if not any(m.role == "user" for m in taken.messages):
        _refuse("missing", (), "must hold a user message")


async def _check_latest(session: AsyncSession, previous: Run) -> None:
    latest = await session.scalar(
        select(Run.id)
        .where(Run.conversation_id == previous.conversation_id)
        .order_by(Run.created_at.desc())
        .limit(1)
    )
    if latest != previous.id:
        assert latest is not None
        detail = (
            f"{response_id(previous.id)} is not the latest response of its conversation: "
            f"continue from {response_id(latest)}"
        )
        raise HTTPException(status.HTTP_409_CONFLICT, detail)
    if previous.status not in SETTLED:
        detail = f"{response_id(previous.id)} is still in progress: continue it once it has ended"
        raise HTTPException(status.HTTP_409_CONFLICT, detail)


async def _continue(
    session: AsyncSession, previous: Run, taken: Input
) -> dict[str, dict[str, object]]:
    """Check the input answers what the previous response left waiting: every call of the
    client's functions it ended with (by a function_call_output), or every approval request
    (by an approval response, and nothing else). A response waiting on approval is settled
    as handed over; the decisions go to the new run, which runs the approved calls."""
    waiting = await _client_calls(session, previous)
    answered = set(taken.outputs_elsewhere)
    for call in waiting:
        if call.id not in answered:
            detail = f"function call {call.id} ({call.name}) has no function_call_output"
            _refuse("missing_output", (), detail)
    if unknown := answered - {call.id for call in waiting}:
        detail = (
            f"function_call_output {sorted(unknown)[0]} answers no call of the input or of "
            "the previous response"
        )
        _refuse("unknown_call", (), detail)
    pending = {call.id: call for call in previous.pending_approvals}
    if previous.status != "awaiting_approval":
        pending = {}
    for call_id, index in taken.decided_at.items():
        if call_id not in pending:
            detail = (
                f"{APPROVAL_PREFIX}{call_id} is not an approval request the previous "
                "response waits on"
            )
            _refuse("unknown_approval_request", (index,), detail)
    if not pending:
        return {}
    for call_id in pending:
        if call_id not in taken.decisions:
            detail = f"approval request {APPROVAL_PREFIX}{call_id} has no mcp_approval_response"
            _refuse("missing_approval", (), detail)
    if taken.messages:
        detail = "a response that answers approval requests holds only the approval responses"
        _refuse("not_only_approvals", (), detail)
    previous.status, previous.stop_reason, previous.finished_at = (
        "succeeded",
        "awaiting_approval",
        utcnow(),
    )
    runs.add_event(
        session,
        previous,
        "done",
        runs.done_data(previous.status, previous.stop_reason, previous.usage),
    )
    return {
        call.id: {
            "name": call.name,
            "arguments": call.arguments,
            "approved": taken.decisions[call.id],
        }
        for call in pending.values()
    }


async def _client_calls(session: AsyncSession, previous: Run) -> list[ToolCall]:
    """The calls of the client's functions the previous response ended with."""
    if previous.stop_reason != "client_tools":
        return []
    last = await session.scalar(
        select(Message)
        .where(Message.run_id == previous.id, Message.role == "assistant")
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )
    names = {tool["name"] for tool in previous.client_tools}
    return [call for call in last.calls if call.name in names] if last else []


def _refuse(kind: str, location: tuple[str | int, ...], detail: str) -> NoReturn:
    raise RequestValidationError([field_error(kind, ("input", *location), detail)])

"""What each tool does, for the caller its request was authorized as: a turn or a run on a new
conversation, a run read or decided on. Errors are ToolError with the words REST answers."""

import uuid
from dataclasses import dataclass

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agent.loop import ErrorEvent
from app.conversations import service as conversations
from app.conversations.models import Conversation
from app.conversations.schemas import ConversationCreate, MessageCreate, ToolCallOut
from app.flows import messages
from app.resources import Resources
from app.runs import service as runs
from app.runs.models import Run
from app.runs.schemas import ApprovalDecision, RunOut
from app.spend.budgets import Account
from app.turns import TurnBuilder


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls (the owner of the request's key) and what the process's turns run on."""

    owner: str
    turns: TurnBuilder
    resources: Resources


class Answer(BaseModel):
    answer: str
    # The conversation the turn is stored in (GET /v1/conversations/{id} reads it).
    conversation_id: uuid.UUID


class RunState(BaseModel):
    run_id: uuid.UUID
    conversation_id: uuid.UUID
    status: str
    stop_reason: str | None
    error: str | None
    # The agent's last answer, once the run has succeeded.
    answer: str | None
    # The calls waiting for a decision: approve(run_id, tool_call_id, approved) each.
    pending_approvals: list[ToolCallOut]


async def ask(caller: Caller, message: str) -> Answer:
    """One turn on a new conversation, stored as POST .../messages stores it."""
    data = _message(message)
    account = await _admitted(caller)
    async with caller.turns.sessionmaker() as session:
        conversation = await _new_conversation(session, caller.owner)
        _, turn = await messages.send(
            turns=caller.turns,
            session=session,
            conversation=conversation,
            data=data,
            account=account,
        )
    ended = await turn.outcome()
    if isinstance(ended, ErrorEvent):
        raise ToolError(ended.detail)
    reply = next(step for step in reversed(ended.steps) if step.role == "assistant")
    return Answer(answer=reply.content, conversation_id=conversation.id)


async def start_run(caller: Caller, message: str) -> RunState:
    """A queued run on a new conversation; a worker executes it."""
    data = _message(message)
    await _admitted(caller)
    async with caller.turns.sessionmaker() as session:
        conversation = await _new_conversation(session, caller.owner)
        run = await runs.start_run(
            session=session,
            conversation=conversation,
            data=data,
            queue=caller.resources.queue,
            metrics=caller.resources.metrics,
        )
        return await _state(session, run)


async def get_run(caller: Caller, run_id: uuid.UUID) -> RunState:
    async with caller.turns.sessionmaker() as session:
        return await _state(session, await _owned(session, caller, run_id))


async def approve(caller: Caller, run_id: uuid.UUID, tool_call_id: str, approved: bool) -> RunState:
    async with caller.turns.sessionmaker() as session:
        run = await _owned(session, caller, run_id, lock=True)
        try:
            decision = ApprovalDecision(tool_call_id=tool_call_id, approved=approved)
            await runs.decide(
                session=session,
                run=run,
                decisions=[decision],
                queue=caller.resources.queue,
                metrics=caller.resources.metrics,
            )
        except ValidationError as exc:
            raise ToolError(_reasons(exc)) from None
        except runs.NotAwaitingError:
            raise ToolError(f"run {run.id} is {run.status}, not awaiting approval") from None
        except runs.UndecidableError as exc:
            raise ToolError(str(exc)) from None
        return await _state(session, run)


def _message(text: str) -> MessageCreate:
    """The message as POST .../messages takes it: the same bounds, the same words if not."""
    try:
        return MessageCreate(content=text)
    except ValidationError as exc:
        raise ToolError(_reasons(exc)) from None


def _reasons(exc: ValidationError) -> str:
    return "; ".join(str(error["msg"]) for error in exc.errors())


async def _admitted(caller: Caller) -> Account:
    """The caller's account, if its budget has room: refused as REST refuses it (its 429's
    words), before anything is stored."""
    account = caller.turns.spending.account(caller.owner)
    if refusal := await account.check():
        raise ToolError(refusal.detail)
    return account


async def _new_conversation(session: AsyncSession, owner: str) -> Conversation:
    return await conversations.create_conversation(
        session=session, owner=owner, data=ConversationCreate()
    )


async def _owned(
    session: AsyncSession, caller: Caller, run_id: uuid.UUID, *, lock: bool = False
) -> Run:
    """The caller's run; another key's is not found, as an unknown id is (REST's 404)."""
    run = await runs.get_run(session=session, owner=caller.owner, run_id=run_id, lock=lock)
    if run is None:
        raise ToolError(f"run {run_id} not found")
    return run


async def _state(session: AsyncSession, run: Run) -> RunState:
    out = RunOut.model_validate(run)
    answer = None
    if out.status == "succeeded":
        _, answered = await runs.progress(session=session, run_id=run.id)
        answer = answered.content if answered is not None else None
    return RunState(
        run_id=out.id,
        conversation_id=out.conversation_id,
        status=out.status,
        stop_reason=out.stop_reason,
        error=out.error,
        answer=answer,
        pending_approvals=out.pending_approvals,
    )

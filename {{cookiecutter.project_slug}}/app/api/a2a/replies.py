"""What a client's message says: the text a new run answers, or, in a task waiting on
approval, the decisions on its calls.

A decision is text ("yes"/"approve" or "no"/"deny", for every call the task waits on) or
data parts {"approved": true|false}, one for every call, or one per call with its
"tool_call_id"."""

from typing import NoReturn

from a2a.helpers.proto_helpers import get_data_parts, get_text_parts
from a2a.types.a2a_pb2 import Message
from a2a.utils.errors import InvalidParamsError

from app.llm.base import ToolCall
from app.runs.schemas import ApprovalDecision

YES = frozenset({"yes", "y", "approve", "approved"})
NO = frozenset({"no", "n", "deny", "denied"})


def text_of(message: Message) -> str:
    """The message's text parts, joined; InvalidParamsError when it has none."""
    texts = get_text_parts(message.parts)
    if not texts:
        raise InvalidParamsError("message: holds no text part (this agent reads text)")
    return "\n".join(texts)


def decisions(message: Message, pending: list[ToolCall]) -> list[ApprovalDecision]:
    """The decisions a reply makes on every pending call; InvalidParamsError, naming what
    the task waits on, for a reply that does not decide each exactly once."""
    data = get_data_parts(message.parts)
    if not data:
        said = " ".join(get_text_parts(message.parts)).strip().lower()
        said = said.rstrip(".!")
        if said in YES | NO:
            return [ApprovalDecision(tool_call_id=c.id, approved=said in YES) for c in pending]
        _refuse(pending, "a reply to this task decides on its calls")
    if len(data) == 1 and isinstance(data[0], dict) and "tool_call_id" not in data[0]:
        approved = data[0].get("approved")
        if not isinstance(approved, bool):
            _refuse(pending, 'a data part holds "approved": true or false')
        return [ApprovalDecision(tool_call_id=c.id, approved=approved) for c in pending]
    decided = {}
    for each in data:
        if not isinstance(each, dict) or not isinstance(each.get("approved"), bool):
            _refuse(pending, 'each data part holds "tool_call_id" and "approved": true or false')
        decided[str(each.get("tool_call_id"))] = each["approved"]
    if set(decided) != {c.id for c in pending} or len(decided) != len(data):
        _refuse(pending, "decide on every call the task waits on, each once")
    return [ApprovalDecision(tool_call_id=k, approved=v) for k, v in decided.items()]


def _refuse(pending: list[ToolCall], why: str) -> NoReturn:
    ids = ", ".join(f"{c.id} ({c.name})" for c in pending)
    raise InvalidParamsError(
        f'{why}: it waits on {ids}; reply "yes" or "no", or with data parts '
        '{"tool_call_id": ..., "approved": true|false}'
    )

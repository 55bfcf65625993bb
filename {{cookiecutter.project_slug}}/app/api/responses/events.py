"""A response as the Responses API shows it, rebuilt from what its run stored: its output items,
its status, and its streamed events, each with its sequence number.

Every read rebuilds the whole sequence from the run's stored messages and state, which only
grow: the events are the same on every read, so `starting_after=N` always means the same N,
whichever worker wrote the steps and however often the client reconnects. A step's text comes
whole, in one delta: a run stores steps, not tokens."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.api.responses.items import APPROVAL_PREFIX
from app.api.responses.objects import (
    ApprovalRequestOut,
    FunctionCallOut,
    FunctionToolOut,
    IncompleteDetails,
    McpCallOut,
    MessageOut,
    OutputItem,
    OutputText,
    ResponseError,
    ResponseObject,
    ResponseUsage,
    Status,
    TextOut,
)
from app.conversations.models import Message
from app.llm.base import ToolCall
from app.runs.models import Run

PREFIX = "resp_"
# A run parked awaiting approval is, to the Responses API, a completed response whose output
# ends with approval requests: the client answers them in a response that continues it.
STATUS: dict[str, Status] = {
    "queued": "queued",
    "running": "in_progress",
    "awaiting_approval": "completed",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
SETTLED = frozenset({"awaiting_approval", "succeeded", "failed", "cancelled"})
TERMINAL_EVENT: dict[Status, str] = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
    # The specification has no event for a cancelled response: it is left incomplete.
    "cancelled": "response.incomplete",
}
# How a failed run's error is coded: a budget's refusal as OpenAI codes a spent quota.
ERROR_CODES = {"budget_exceeded": "insufficient_quota"}


def response_id(run_id: uuid.UUID) -> str:
    return f"{PREFIX}{run_id.hex}"


def run_id_of(value: str) -> uuid.UUID | None:
    """The run a response id names; None for anything else (answered 404, as a foreign id)."""
    if not value.startswith(PREFIX):
        return None
    try:
        return uuid.UUID(hex=value.removeprefix(PREFIX))
    except ValueError:
        return None


@dataclass(slots=True)
class Stored:
    """What a response is rebuilt from: its run, the messages the run wrote, in order, and the
    calls of the response it continues (a call approved there gets its result here)."""

    run: Run
    messages: Sequence[Message]
    inherited: dict[str, ToolCall] = field(default_factory=dict)


@dataclass(slots=True)
class Replay:
    """The response's items and events, built in order from what was stored."""

    stored: Stored
    model: str
    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[OutputItem] = field(default_factory=list)

    @classmethod
    def of(cls, stored: Stored, model: str) -> "Replay":
        replay = cls(stored, model)
        replay._build()
        return replay

    @property
    def settled(self) -> bool:
        return self.stored.run.status in SETTLED

    def response(self) -> ResponseObject:
        """The response now: its status and every item so far."""
        return self._object(self._status(), list(self.items))

    def _build(self) -> None:
        run = self.stored.run
        self._emit(
            "response.created",
            response=self._snapshot("queued" if run.background else "in_progress"),
        )
        self._emit("response.in_progress", response=self._snapshot("in_progress"))
        client_names = {tool["name"] for tool in run.client_tools}
        calls = dict(self.stored.inherited)
        for message in self.stored.messages:
            if message.role == "assistant":
                if message.content:
                    self._message(message)
                for index, call in enumerate(message.calls):
                    if call.name in client_names:
                        self._function_call(f"fc_{message.id.hex}_{index}", call)
                    else:
                        calls[call.id] = call
            elif message.role == "tool" and message.tool_call_id in calls:
                self._mcp_call(message, calls[message.tool_call_id])
        if not self.settled:
            return
        for call in run.pending_approvals:
            request = ApprovalRequestOut(
                id=f"{APPROVAL_PREFIX}{call.id}",
                server_label=self.model,
                name=call.name,
                arguments=call.arguments,
            )
            self._added(request)
            self._done(request)
        status = self._status()
        self._emit(TERMINAL_EVENT[status], response=self._object(status, list(self.items)))

    def _message(self, message: Message) -> None:
        item_id, index = f"msg_{message.id.hex}", len(self.items)
        text = message.content
        self._added(MessageOut(id=item_id, status="in_progress", content=[]))
        at = {"item_id": item_id, "output_index": index, "content_index": 0}
        self._emit("response.content_part.added", **at, part=_dump(OutputText(text="")))
        self._emit("response.output_text.delta", **at, delta=text, logprobs=[])
        self._emit("response.output_text.done", **at, text=text, logprobs=[])
        self._emit("response.content_part.done", **at, part=_dump(OutputText(text=text)))
        self._done(MessageOut(id=item_id, content=[OutputText(text=text)]))

    def _function_call(self, item_id: str, call: ToolCall) -> None:
        index = len(self.items)
        fields = {"id": item_id, "call_id": call.id, "name": call.name}
        self._added(FunctionCallOut(**fields, arguments="", status="in_progress"))
        at = {"item_id": item_id, "output_index": index}
        self._emit("response.function_call_arguments.delta", **at, delta=call.arguments)
        self._emit("response.function_call_arguments.done", **at, arguments=call.arguments)
        self._done(FunctionCallOut(**fields, arguments=call.arguments))

    def _mcp_call(self, result: Message, call: ToolCall) -> None:
        fields = {
            "id": f"mcp_{result.id.hex}",
            "server_label": self.model,
            "name": call.name,
            "arguments": call.arguments,
        }
        self._added(McpCallOut(**fields, output=None, status="in_progress"))
        self._done(McpCallOut(**fields, output=result.content))

    def _added(self, item: OutputItem) -> None:
        self._emit("response.output_item.added", output_index=len(self.items), item=_dump(item))

    def _done(self, item: OutputItem) -> None:
        self._emit("response.output_item.done", output_index=len(self.items), item=_dump(item))
        self.items.append(item)

    def _emit(self, kind: str, **data: Any) -> None:
        if isinstance(data.get("response"), ResponseObject):
            data["response"] = _dump(data["response"])
        self.events.append({"type": kind, "sequence_number": len(self.events), **data})

    def _status(self) -> Status:
        run = self.stored.run
        if run.status == "succeeded" and run.stop_reason == "max_steps":
            return "incomplete"
        return STATUS[run.status]

    def _snapshot(self, status: Status) -> ResponseObject:
        # As it was then: no output, no usage (what the run has used since is not part of
        # an event that must read the same on every replay).
        return self._object(status, []).model_copy(update={"usage": None})

    def _object(self, status: Status, items: list[OutputItem]) -> ResponseObject:
        run = self.stored.run
        settled = status not in ("queued", "in_progress")
        finished = run.finished_at if settled and run.finished_at else None
        incomplete = None
        if status == "incomplete":
            incomplete = IncompleteDetails(reason=run.stop_reason or "max_steps")
        error = None
        if status == "failed":
            code = ERROR_CODES.get(run.stop_reason or "", "server_error")
            error = ResponseError(code=code, message=run.error or "the run failed")
        output = run.output_format
        text_format = {"type": "text"} if output is None else {"type": "json_schema", **output}
        usage = run.usage
        return ResponseObject(
            id=response_id(run.id),
            created_at=int(run.created_at.timestamp()),
            completed_at=int(finished.timestamp()) if finished else None,
            status=status,
            incomplete_details=incomplete,
            model=self.model,
            previous_response_id=response_id(run.previous_run_id) if run.previous_run_id else None,
            instructions=run.instructions,
            output=items,
            error=error,
            tools=[FunctionToolOut(**tool, strict=None) for tool in run.client_tools],
            text=TextOut(format=text_format),
            usage=ResponseUsage(
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                total_tokens=usage.prompt_tokens + usage.completion_tokens,
            ),
            background=run.background,
        )


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)

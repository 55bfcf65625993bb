"""A request's input items as the conversation's messages: what the response starts from.

The conversation keeps user, assistant and tool messages; system and developer messages become
the run's instructions. Items of one model step (its text, the client's function calls, the
agent's tool calls) make one assistant message, each call's result after it, as a model takes
them. Decisions on approval requests are not messages: they go to the run."""

from dataclasses import dataclass, field
from typing import NoReturn

from fastapi.exceptions import RequestValidationError

from app.api.errors import field_error
from app.api.responses.schemas import (
    ApprovalResponseIn,
    CreateResponse,
    FunctionCallIn,
    FunctionCallOutputIn,
    McpCallIn,
    MessageIn,
    text_of,
)
from app.llm.base import ChatMessage, ToolCall

# An approval request's id is its call's id behind this prefix: the decision names the call.
APPROVAL_PREFIX = "mcpr_"


@dataclass(slots=True)
class Input:
    """What a request's items add: messages to store, instructions, and decisions by call id."""

    messages: list[ChatMessage] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    decisions: dict[str, bool] = field(default_factory=dict)
    # Where each decision was in the input, to name it in an error.
    decided_at: dict[str, int] = field(default_factory=dict)
    # Calls answered by a function_call_output item whose call is not in the input.
    outputs_elsewhere: list[str] = field(default_factory=list)
    # The calls of the last assistant message not yet stored, and their results from
    # mcp_call items (a function_call_output item comes after them on its own).
    _text: list[str] = field(default_factory=list)
    _calls: list[ToolCall] = field(default_factory=list)
    _results: list[ChatMessage] = field(default_factory=list)

    @classmethod
    def of(cls, body: CreateResponse) -> "Input":
        taken = cls()
        if body.instructions:
            taken.instructions.append(body.instructions)
        for index, item in enumerate(body.input):
            taken._take(index, item)
        taken._flush()
        taken._check_answers()
        return taken

    def _take(self, index: int, item: object) -> None:
        match item:
            case MessageIn(role="system" | "developer"):
                self.instructions.append(text_of(item.content))
            case MessageIn(role="assistant"):
                if self._calls:
                    self._flush()
                self._text.append(text_of(item.content))
            case MessageIn():
                self._flush()
                self.messages.append(ChatMessage("user", text_of(item.content)))
            case FunctionCallIn(call_id=call_id, name=name, arguments=arguments):
                self._calls.append(ToolCall(call_id, name, arguments))
            case McpCallIn(id=call_id, name=name, arguments=arguments):
                self._calls.append(ToolCall(call_id, name, arguments))
                result = item.output if item.error is None else item.error
                self._results.append(ChatMessage("tool", result or "", tool_call_id=call_id))
            case FunctionCallOutputIn(call_id=call_id, output=output):
                self._flush()
                self.messages.append(ChatMessage("tool", text_of(output), tool_call_id=call_id))
            case ApprovalResponseIn(approval_request_id=request_id, approve=approve):
                call_id = request_id.removeprefix(APPROVAL_PREFIX)
                if call_id in self.decisions:
                    _invalid("decided_twice", (index,), f"{request_id} is answered twice")
                self.decisions[call_id] = approve
                self.decided_at[call_id] = index

    def _flush(self) -> None:
        if self._text or self._calls:
            content = "".join(self._text)
            self.messages.append(ChatMessage("assistant", content, tuple(self._calls)))
            self.messages.extend(self._results)
        self._text, self._calls, self._results = [], [], []

    def _check_answers(self) -> None:
        """Note each function output that answers no call of the input: it must answer a call
        of the response this one continues (checked there), else the model would read the
        answer to a question it never asked."""
        asked = {call.id for message in self.messages for call in message.tool_calls}
        self.outputs_elsewhere = [
            m.tool_call_id or ""
            for m in self.messages
            if m.role == "tool" and m.tool_call_id not in asked
        ]


def _invalid(kind: str, location: tuple[str | int, ...], detail: str) -> NoReturn:
    raise RequestValidationError([field_error(kind, ("input", *location), detail)])

"""What the providers on an official SDK share: tool names on the wire, streamed tool calls,
arguments as objects, and the openai and anthropic SDKs' errors."""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx2

from app.llm.base import LLMError, LLMUnavailableError, ToolCall, ToolSpec, answered

_WIRE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# Anthropic's `event: error` types that mean "not now" rather than "not this request".
_NOT_NOW = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


def _wire_safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "_"


class WireNames:
    """Our tool names as a provider's function names, and back, for one call: OpenAI and
    Anthropic want ^[a-zA-Z0-9_-]{1,64}$ (Gemini a little more), an MCP tool is "server.tool".
    Built from the tools one call offers, so that no two share a wire name; our API, the
    stored steps and the events keep our names."""

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        taken = {tool.name for tool in tools if _WIRE_NAME.fullmatch(tool.name)}
        self._wire = {name: name for name in taken}
        for tool in tools:
            wire, number = _wire_safe(tool.name), 1
            while tool.name not in self._wire and wire in taken:
                number += 1
                wire = f"{_wire_safe(tool.name)[: 63 - len(str(number))]}_{number}"
            taken.add(self._wire.setdefault(tool.name, wire))
        self._ours = {wire: ours for ours, wire in self._wire.items()}

    def wire(self, name: str) -> str:
        # A name no longer offered (an earlier call in the history) still has to be valid.
        return self._wire.get(name) or _wire_safe(name)

    def ours(self, wire: str) -> str:
        return self._ours.get(wire, wire)


@dataclass
class PartialCall:
    """A tool call streamed in pieces: its id and name first, its arguments in fragments."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def whole_calls(calls: Mapping[int, PartialCall], names: WireNames) -> tuple[ToolCall, ...]:
    # A tool without arguments may come with no fragment at all.
    return tuple(
        ToolCall(call.id, names.ours(call.name), "".join(call.arguments) or "{}")
        for _, call in sorted(calls.items())
    )


def json_object(arguments: str) -> dict[str, Any]:
    # The APIs take arguments as an object only. Arguments that were not one were refused
    # when the call was made, and the result paired with this call says so.
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def sdk_error(exc: Exception, sdk: ModuleType) -> LLMError:
    """An error of the openai or anthropic SDK (generated alike: their errors share names and
    fields), or of its transport, which mid-stream reaches us unwrapped."""
    # Upstream error bodies may echo prompts or keys: clients get the kind and status only.
    if isinstance(exc, sdk.APIStatusError) and exc.status_code >= 400:
        return answered(exc.status_code)
    if isinstance(exc, sdk.APIStatusError) and exc.type in _NOT_NOW:
        # An `event: error` in a stream that had begun with 200: its kind, not its text.
        return LLMUnavailableError(f"the language model provider failed midway: {exc.type}")
    if isinstance(exc, json.JSONDecodeError):  # a stream that is not JSON
        return LLMError("the language model provider sent a malformed stream")
    # aiohttp's transport reports a refused connection as a connect timeout: either way,
    # the provider was never reached.
    connecting = isinstance(exc.__cause__, httpx2.ConnectTimeout)
    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException)) and not connecting:
        return LLMUnavailableError("the language model provider timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return LLMUnavailableError("the language model provider could not be reached")
    if isinstance(exc, httpx2.TransportError):
        return LLMUnavailableError("the language model provider stopped answering")
    return LLMError("the language model provider failed")

"""Tool names as the providers accept them: our names stay ours everywhere else."""

import re
from collections.abc import Sequence

from app.llm.base import ToolSpec


class WireNames:
    """Our tool names as a provider's function names, and back, for one call.

    OpenAI and Anthropic want ^[a-zA-Z0-9_-]{1,64}$ (Gemini allows a little more); an MCP
    server's tool is "server.tool". Built from the tools one call offers, so that no two of
    them share a wire name; our API, the stored steps and the events keep our names.
    """

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        taken = {tool.name for tool in tools if _WIRE_NAME.fullmatch(tool.name)}
        self._wire = {tool.name: tool.name for tool in tools if tool.name in taken}
        for tool in tools:
            if tool.name not in taken:
                self._wire[tool.name] = _unique(_wire_safe(tool.name), taken)
        self._ours = {wire: ours for ours, wire in self._wire.items()}

    def wire(self, name: str) -> str:
        # A name no longer offered (an earlier call in the history) still has to be valid.
        return self._wire.get(name) or _wire_safe(name)

    def ours(self, wire: str) -> str:
        return self._ours.get(wire, wire)


_WIRE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NOT_WIRE = re.compile(r"[^a-zA-Z0-9_-]")


def _wire_safe(name: str) -> str:
    return _NOT_WIRE.sub("_", name)[:64] or "_"


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        suffix = f"_{number}"
        candidate = name[: 64 - len(suffix)] + suffix
    taken.add(candidate)
    return candidate

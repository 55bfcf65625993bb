"""An offline, deterministic provider: new projects and tests run with no key.

It repeats the last user message. Each line of it like `/tool NAME {"argument": "value"}` (the
JSON optional) makes it call the tool NAME, one such line per step, in order; once every line
has its result it replies with the message and one `NAME: result` line per call. So a new
project shows the tool loop, and tests drive it, without a network.
"""

import re
from collections.abc import AsyncIterator, Sequence

from app.llm.base import ChatMessage, Completion, OutputFormat, ToolCall, ToolSpec, Usage

_TOKENS = re.compile(r"\S+\s*|\s+")
_TOOL_LINE = re.compile(r"^/tool\s+(?P<name>\S+)\s*(?P<arguments>.*)$")


class EchoProvider:
    name = "echo"
    model = "echo"

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion:
        return answer_to(messages)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        completion = answer_to(messages)
        for token in _TOKENS.findall(completion.content):
            yield token
        yield completion

    async def aclose(self) -> None:
        pass


def answer_to(messages: Sequence[ChatMessage]) -> Completion:
    """Call the next tool the last user message asks for, or reply with what it was sent."""
    system = next((m.content for m in messages if m.role == "system"), "")
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    user_text = messages[last_user].content if last_user >= 0 else ""
    results = [m for m in messages[last_user + 1 :] if m.role == "tool"]
    parsed = [(line, _TOOL_LINE.match(line.strip())) for line in user_text.splitlines()]
    # The /tool lines: (name, JSON arguments), in order.
    calls = [(m["name"], m["arguments"].strip() or "{}") for _, m in parsed if m]
    usage_in = sum(len(m.content.split()) for m in messages)
    if len(results) < len(calls):
        name, arguments = calls[len(results)]
        call = ToolCall(id=f"echo_call_{len(results) + 1}", name=name, arguments=arguments)
        return Completion("", (call,), Usage(usage_in, 1))
    text = "\n".join(line for line, m in parsed if not m).strip() if calls else user_text
    reply = f"[{system}] {text}" if system else text
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    lines = [f"{names.get(r.tool_call_id or '', 'tool')}: {r.content}" for r in results]
    reply = "\n".join([reply, *lines]) if lines else reply
    return Completion(reply, (), Usage(usage_in, len(reply.split())))

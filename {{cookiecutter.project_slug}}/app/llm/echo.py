"""An offline, deterministic provider: new projects and tests run with no key.

It repeats the last user message. Each line of it like `/tool NAME {"argument": "value"}` (the
JSON optional) makes it call the tool NAME, one such line per step, in order; once every line
has its result it replies with the message and one `NAME: result` line per call. So a new
project shows the tool loop, and tests drive it, without a network.

Asked for structured output (an OutputFormat), its reply is instead JSON valid for the schema,
each string in it that reply's text: the JSON-schema subset clients send (objects, arrays,
scalars, enum, const, anyOf, $ref to $defs, as pydantic writes them) is enough to fill.
"""

import json
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

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
        return answer_to(messages, output)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        completion = answer_to(messages, output)
        for token in _TOKENS.findall(completion.content):
            yield token
        yield completion

    async def aclose(self) -> None:
        pass


def answer_to(messages: Sequence[ChatMessage], output: OutputFormat | None = None) -> Completion:
    """Call the next tool the last user message asks for, or reply with what it was sent (as
    JSON valid for output's schema, when there is one)."""
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
    if output is not None:
        reply = json.dumps(instance_of(output.schema, reply, output.schema))
    return Completion(reply, (), Usage(usage_in, len(reply.split())))


def instance_of(
    schema: Mapping[str, Any], text: str, root: Mapping[str, Any], depth: int = 0
) -> Any:
    """A value valid for schema (the simplest that is, its strings the text); $refs resolve
    against root, the whole schema. Deep down it stops recursive models with empty lists and
    nulls, where they allow them."""
    deep, inner = depth > _DEEPEST, depth + 1
    if "$ref" in schema:
        # "#/$defs/City", as pydantic writes it: a JSON pointer into the schema itself.
        target: Any = root
        for key in schema["$ref"].removeprefix("#").strip("/").split("/"):
            target = target[key] if key else target
        return instance_of(target, text, root, inner)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if variants := schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf"):
        # A nullable field is anyOf [X, null]: X shows more than null would, until deep.
        chosen = next((v for v in variants if (v.get("type") == "null") == deep), variants[0])
        return instance_of(chosen, text, root, inner)
    kinds = schema.get("type", "object" if "properties" in schema else "string")
    # ["string", "null"], the older spelling of nullable: the first that is not null.
    kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
    if kind == "array":
        return [] if deep else [instance_of(schema.get("items", {}), text, root, inner)]
    if kind == "object":
        return _object(schema, text, root, inner)
    return _SCALARS[kind](schema, text)


def _object(schema: Mapping[str, Any], text: str, root: Mapping[str, Any], depth: int) -> Any:
    properties = schema.get("properties", {})
    if not properties and (extra := schema.get("additionalProperties", True)) is not False:
        # A free-form object ({"type": "object"}, OpenAI's json_object): one key shows the text.
        return {"echo": instance_of(extra if isinstance(extra, dict) else {}, text, root, depth)}
    return {name: instance_of(value, text, root, depth) for name, value in properties.items()}


def _string(schema: Mapping[str, Any], text: str) -> str:
    return text.ljust(schema.get("minLength", 0), ".")[: schema.get("maxLength")]


def _least(schema: Mapping[str, Any]) -> float:
    if "exclusiveMinimum" in schema:
        return float(schema["exclusiveMinimum"]) + 1
    return float(schema.get("minimum", 0))


# Levels of nesting before recursive models are cut short.
_DEEPEST = 16
_SCALARS: dict[str, Callable[[Mapping[str, Any], str], Any]] = {
    "string": _string,
    "integer": lambda schema, _: math.ceil(_least(schema)),
    "number": lambda schema, _: _least(schema),
    "boolean": lambda schema, _: True,
    "null": lambda schema, _: None,
}

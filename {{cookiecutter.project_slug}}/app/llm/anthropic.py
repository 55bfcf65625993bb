"""Claude through Anthropic's official SDK, tools and structured output included, the tools and
system prompt cached."""

import json
from collections.abc import AsyncIterator, Sequence

import anthropic
import httpx2
from anthropic import types

from app.llm.base import (
    ChatMessage,
    Completion,
    LLMUnavailableError,
    OutputFormat,
    ToolCall,
    ToolSpec,
    Usage,
)
from app.llm.sdk import PartialCall, WireNames, json_object, sdk_error, whole_calls

# A breakpoint: the API caches the prompt up to and including the block that carries it.
_CACHE_HERE = types.CacheControlEphemeralParam(type="ephemeral")
# A stream's transport errors reach us unwrapped; a stream that is not JSON, as a decode error.
_FAILURES = (anthropic.AnthropicError, httpx2.TransportError, json.JSONDecodeError)


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic, model: str, *, max_tokens: int) -> None:
        self._client = client
        self.model = model
        self._max_tokens = max_tokens

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion:
        names = WireNames(tools)
        try:
            reply = await self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                system=_system(messages),
                messages=_to_wire(messages, names),
                tools=_tools(tools, names),
                output_config=_output_config(output),
            )
        except _FAILURES as exc:
            raise sdk_error(exc, anthropic) from exc
        text = "".join(block.text for block in reply.content if block.type == "text")
        calls = tuple(
            ToolCall(block.id, names.ours(block.name), json.dumps(block.input))
            for block in reply.content
            if block.type == "tool_use"
        )
        return Completion(text, calls, _usage(reply.usage))

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        names = WireNames(tools)
        parts: list[str] = []
        calls: dict[int, PartialCall] = {}
        counts: list[types.Usage | types.MessageDeltaUsage] = []
        finished = False
        try:
            # The raw events, not messages.stream(): that helper also rebuilds the whole
            # message after every event, which we never read.
            async with await self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                system=_system(messages),
                messages=_to_wire(messages, names),
                tools=_tools(tools, names),
                output_config=_output_config(output),
                stream=True,
            ) as events:
                async for event in events:
                    if event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            parts.append(delta.text)
                            yield delta.text
                        elif delta.type == "input_json_delta" and event.index in calls:
                            calls[event.index].arguments.append(delta.partial_json)
                    elif event.type == "content_block_start":
                        if (block := event.content_block).type == "tool_use":
                            calls[event.index] = PartialCall(block.id, block.name)
                    elif event.type == "message_start":
                        counts.append(event.message.usage)
                    elif event.type == "message_delta":
                        counts.append(event.usage)
                    finished = finished or event.type == "message_stop"
        except _FAILURES as exc:
            raise sdk_error(exc, anthropic) from exc
        if not finished:
            # The connection ended cleanly but early: what came is not the whole answer.
            raise LLMUnavailableError("the language model provider stopped answering")
        yield Completion("".join(parts), whole_calls(calls, names), _usage(*counts))

    async def aclose(self) -> None:
        await self._client.close()


def _usage(*counts: types.Usage | types.MessageDeltaUsage) -> Usage:
    """The last count of each kind: message_start gives them all, message_delta updates some."""

    def last(kind: str) -> int:
        return next((n for c in reversed(counts) if (n := getattr(c, kind)) is not None), 0)

    read, write = last("cache_read_input_tokens"), last("cache_creation_input_tokens")
    # Anthropic's input_tokens leave out the cached ones; our prompt_tokens count them all.
    return Usage(last("input_tokens") + read + write, last("output_tokens"), read, write)


def _system(messages: Sequence[ChatMessage]) -> list[types.TextBlockParam] | anthropic.Omit:
    blocks: list[types.TextBlockParam] = [
        {"type": "text", "text": m.content} for m in messages if m.role == "system" and m.content
    ]
    if not blocks:
        return anthropic.omit
    blocks[-1]["cache_control"] = _CACHE_HERE
    return blocks


def _tools(tools: Sequence[ToolSpec], names: WireNames) -> list[types.ToolParam] | anthropic.Omit:
    if not tools:
        return anthropic.omit
    wire: list[types.ToolParam] = [
        {
            "name": names.wire(tool.name),
            "description": tool.description,
            "input_schema": dict(tool.parameters),
        }
        for tool in tools
    ]
    # Tools come first in the prompt: they change less often than the system prompt after them.
    wire[-1]["cache_control"] = _CACHE_HERE
    return wire


def _output_config(output: OutputFormat | None) -> types.OutputConfigParam | anthropic.Omit:
    """Anthropic's structured outputs for a strict format, its schema made to fit their JSON
    Schema subset by the SDK's own transform (as messages.parse does: objects closed, bounds
    moved into descriptions). They are always strict: a format that is not, such as OpenAI's
    json_object (any object), would be narrowed, so it is left to the prompt, as there."""
    if output is None or not output.strict:
        return anthropic.omit
    schema = anthropic.transform_schema(dict(output.schema))
    return {"format": {"type": "json_schema", "schema": schema}}


def _to_wire(messages: Sequence[ChatMessage], names: WireNames) -> list[types.MessageParam]:
    """The conversation as Anthropic's turns, tool results as user blocks: the API refuses two
    messages of one role in a row, and wants every result of an assistant's tool calls in the
    one user message after it, so consecutive turns are merged."""
    wire: list[types.MessageParam] = []
    turn: list[types.ContentBlockParam] = []
    for message in messages:
        if message.role == "system" or not (blocks := _blocks(message, names)):
            # System text goes in `system`; an empty text block would be refused.
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if wire and wire[-1]["role"] == role:
            turn.extend(blocks)
        elif role == "assistant":
            turn = blocks
            wire.append({"role": "assistant", "content": turn})
        else:
            turn = blocks
            wire.append({"role": "user", "content": turn})
    return wire


def _blocks(message: ChatMessage, names: WireNames) -> list[types.ContentBlockParam]:
    if message.role == "tool":
        result: types.ToolResultBlockParam = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
        }
        if message.content:
            result["content"] = message.content
        return [result]
    text: list[types.ContentBlockParam] = [{"type": "text", "text": message.content}]
    return (text if message.content.strip() else []) + [
        {
            "type": "tool_use",
            "id": call.id,
            "name": names.wire(call.name),
            "input": json_object(call.arguments),
        }
        for call in message.tool_calls
    ]

"""A provider for Anthropic's Messages API, tools and prompt caching included."""

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import anthropic
import httpx2
from anthropic.types import (
    CacheControlEphemeralParam,
    ContentBlockParam,
    MessageDeltaUsage,
    MessageParam,
    RawMessageStreamEvent,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
)
from anthropic.types import Usage as WireUsage

from app.llm.base import (
    ChatMessage,
    Completion,
    LLMError,
    LLMUnavailableError,
    ToolCall,
    ToolSpec,
    Usage,
    answered,
)
from app.llm.wire_names import WireNames

# A breakpoint: the API caches the prompt up to and including the block that carries it.
_CACHE_HERE = CacheControlEphemeralParam(type="ephemeral")
# The error types of an `event: error` that mean "not now" rather than "not this request".
_UNAVAILABLE_KINDS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)


class AnthropicProvider:
    """Talk to Claude through the official SDK, caching the tools and system prompt."""

    name = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic, model: str, *, max_tokens: int) -> None:
        self._client = client
        self.model = model
        self._max_tokens = max_tokens

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        names = WireNames(tools)
        try:
            reply = await self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                system=_system(messages),
                messages=_to_wire(messages, names),
                tools=_tools(tools, names),
            )
        except anthropic.AnthropicError as exc:
            raise _as_llm_error(exc) from exc
        text = "".join(block.text for block in reply.content if block.type == "text")
        calls = tuple(
            ToolCall(block.id, names.ours(block.name), json.dumps(block.input))
            for block in reply.content
            if block.type == "tool_use"
        )
        counts = _Counts()
        counts.add(reply.usage)
        return Completion(text, calls, counts.usage())

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | Completion]:
        names = WireNames(tools)
        answer = _StreamedAnswer()
        try:
            # The raw events, not messages.stream(): that helper also rebuilds the whole
            # message after every event, which we never read.
            events = await self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                system=_system(messages),
                messages=_to_wire(messages, names),
                tools=_tools(tools, names),
                stream=True,
            )
            async with events:
                async for event in events:
                    if text := answer.take(event):
                        yield text
        except anthropic.AnthropicError as exc:
            raise _as_llm_error(exc) from exc
        except httpx2.TimeoutException as exc:
            # Mid-stream, the SDK's transport errors reach us unwrapped.
            raise LLMUnavailableError("the language model provider timed out") from exc
        except httpx2.TransportError as exc:
            raise LLMUnavailableError("the language model provider stopped answering") from exc
        except json.JSONDecodeError as exc:
            raise LLMError("the language model provider sent a malformed stream") from exc
        yield answer.whole(names)

    async def aclose(self) -> None:
        await self._client.close()


@dataclass
class _PartialCall:
    """A tool_use block arriving in pieces: its id and name first, its input in fragments."""

    id: str
    name: str
    arguments: list[str] = field(default_factory=list)

    def done(self, names: WireNames) -> ToolCall:
        # A tool without arguments may come with no fragment at all.
        return ToolCall(self.id, names.ours(self.name), "".join(self.arguments) or "{}")


@dataclass
class _Counts:
    """The token counts of one call: message_start gives them, message_delta updates them."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def add(self, usage: WireUsage | MessageDeltaUsage) -> None:
        self.input = usage.input_tokens if usage.input_tokens is not None else self.input
        self.output = usage.output_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write = usage.cache_creation_input_tokens

    def usage(self) -> Usage:
        # Anthropic's input_tokens leave out the cached ones; our prompt_tokens count them all.
        prompt = self.input + self.cache_read + self.cache_write
        return Usage(prompt, self.output, self.cache_read, self.cache_write)


@dataclass
class _StreamedAnswer:
    """One answer as its events arrive: its text, its tool_use blocks, its token counts."""

    parts: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    counts: _Counts = field(default_factory=_Counts)
    finished: bool = False

    def take(self, event: RawMessageStreamEvent) -> str:
        """Fold one event in; return the text it brings ("" for none)."""
        if event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self.parts.append(delta.text)
                return delta.text
            if delta.type == "input_json_delta" and event.index in self.calls:
                self.calls[event.index].arguments.append(delta.partial_json)
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.calls[event.index] = _PartialCall(block.id, block.name)
        elif event.type == "message_start":
            self.counts.add(event.message.usage)
        elif event.type == "message_delta":
            self.counts.add(event.usage)
        elif event.type == "message_stop":
            self.finished = True
        return ""

    def whole(self, names: WireNames) -> Completion:
        if not self.finished:
            # The connection ended cleanly but early: what came is not the whole answer.
            raise LLMUnavailableError("the language model provider stopped answering")
        calls = tuple(self.calls[index].done(names) for index in sorted(self.calls))
        return Completion("".join(self.parts), calls, self.counts.usage())


def _system(messages: Sequence[ChatMessage]) -> list[TextBlockParam] | anthropic.Omit:
    blocks: list[TextBlockParam] = [
        {"type": "text", "text": m.content} for m in messages if m.role == "system" and m.content
    ]
    if not blocks:
        return anthropic.omit
    blocks[-1]["cache_control"] = _CACHE_HERE
    return blocks


def _tools(tools: Sequence[ToolSpec], names: WireNames) -> list[ToolParam] | anthropic.Omit:
    if not tools:
        return anthropic.omit
    wire: list[ToolParam] = [
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


def _to_wire(messages: Sequence[ChatMessage], names: WireNames) -> list[MessageParam]:
    """The conversation as Anthropic's turns: one message a role, tool results as user blocks.

    The API refuses two messages of one role in a row, and wants every result of an
    assistant's tool calls in the one user message after it: consecutive turns are merged.
    """
    wire: list[MessageParam] = []
    turn: list[ContentBlockParam] = []
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


def _blocks(message: ChatMessage, names: WireNames) -> list[ContentBlockParam]:
    if message.role == "tool":
        result: ToolResultBlockParam = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
        }
        if message.content:
            result["content"] = message.content
        return [result]
    blocks: list[ContentBlockParam] = []
    if message.content.strip():
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": names.wire(call.name),
                "input": _tool_input(call.arguments),
            }
        )
    return blocks


def _tool_input(arguments: str) -> dict[str, object]:
    # The API takes an object only. Arguments that were not one were refused when the call
    # was made, and the result paired with this call says so: the model loses nothing.
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _as_llm_error(exc: anthropic.AnthropicError) -> LLMError:
    # Upstream error bodies may echo prompts or keys: clients get the kind and status only.
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status < 400:
            # An `event: error` in a stream that had begun with 200.
            if exc.type in _UNAVAILABLE_KINDS:
                return LLMUnavailableError(f"the language model provider failed midway: {exc.type}")
            return LLMError("the language model provider failed")
        return answered(status)
    # aiohttp's transport reports a refused connection as a connect timeout: either way,
    # the provider was never reached.
    connecting = isinstance(exc.__cause__, httpx2.ConnectTimeout)
    if isinstance(exc, anthropic.APITimeoutError) and not connecting:
        return LLMUnavailableError("the language model provider timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMUnavailableError("the language model provider could not be reached")
    return LLMError("the language model provider failed")

"""A provider for any endpoint that speaks OpenAI's chat-completions API, tools included."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx2
import openai
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

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
from app.llm.openai_chunks import ToolCallDelta, chunks
from app.llm.wire_names import WireNames


class OpenAICompatibleProvider:
    """Talk to OpenAI, Ollama, vLLM or any compatible server through the official SDK."""

    name = "openai"

    def __init__(
        self, client: openai.AsyncOpenAI, model: str, *, max_tokens: int, own_api: bool = False
    ) -> None:
        self._client = client
        self.model = model
        # The answer's ceiling (a budget holds what a call may cost): OpenAI's own API takes
        # it as max_completion_tokens (its reasoning models refuse max_tokens); the servers
        # that speak its format (vLLM, Ollama, llama.cpp, LiteLLM) all read max_tokens.
        self._max_completion_tokens: int | openai.Omit = max_tokens if own_api else openai.omit
        self._max_tokens: int | openai.Omit = openai.omit if own_api else max_tokens

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        names = WireNames(tools)
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=_to_wire(messages, names),
                tools=_tools(tools, names),
                max_completion_tokens=self._max_completion_tokens,
                max_tokens=self._max_tokens,
            )
        except openai.OpenAIError as exc:
            raise _as_llm_error(exc) from exc
        if not response.choices:
            raise LLMError("the language model returned no choices")
        message = response.choices[0].message
        calls = tuple(
            ToolCall(call.id, names.ours(call.function.name), call.function.arguments)
            for call in message.tool_calls or []
            if call.type == "function"
        )
        return Completion(message.content or "", calls, _usage(response.usage))

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | Completion]:
        parts: list[str] = []
        calls: dict[int, _PartialCall] = {}
        usage = Usage()
        names = WireNames(tools)
        request = self._client.chat.completions.with_streaming_response.create(
            model=self.model,
            messages=_to_wire(messages, names),
            tools=_tools(tools, names),
            max_completion_tokens=self._max_completion_tokens,
            max_tokens=self._max_tokens,
            stream=True,
            # The last chunk then carries the call's token counts.
            stream_options={"include_usage": True},
        )
        try:
            async with request as response:
                # Read here rather than through the SDK's chunk models: see openai_chunks.
                async for chunk in chunks(response.iter_lines()):
                    if counted := chunk.get("usage"):
                        usage = Usage(counted["prompt_tokens"], counted["completion_tokens"])
                    if not (choices := chunk.get("choices")):
                        continue
                    delta = choices[0]["delta"]
                    for piece in delta.get("tool_calls") or ():
                        calls.setdefault(piece["index"], _PartialCall()).add(piece)
                    if content := delta.get("content"):
                        parts.append(content)
                        yield content
        except openai.OpenAIError as exc:
            raise _as_llm_error(exc) from exc
        except httpx2.TimeoutException as exc:
            # Mid-stream, the SDK's transport errors reach us unwrapped.
            raise LLMUnavailableError("the language model provider timed out") from exc
        except httpx2.TransportError as exc:
            raise LLMUnavailableError("the language model provider stopped answering") from exc
        whole = tuple(calls[index].done(names) for index in sorted(calls))
        yield Completion("".join(parts), whole, usage)

    async def aclose(self) -> None:
        await self._client.close()


@dataclass
class _PartialCall:
    """A tool call arriving in pieces: the id and name first, the arguments in fragments."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def add(self, piece: ToolCallDelta) -> None:
        self.id = piece.get("id") or self.id
        if function := piece.get("function"):
            self.name = function.get("name") or self.name
            self.arguments.append(function.get("arguments") or "")

    def done(self, names: WireNames) -> ToolCall:
        return ToolCall(self.id, names.ours(self.name), "".join(self.arguments))


def _tools(
    tools: Sequence[ToolSpec], names: WireNames
) -> list[ChatCompletionFunctionToolParam] | openai.Omit:
    if not tools:
        # Some servers refuse an empty list: leave the field out instead.
        return openai.omit
    return [
        {
            "type": "function",
            "function": {
                "name": names.wire(tool.name),
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        }
        for tool in tools
    ]


def _to_wire(messages: Sequence[ChatMessage], names: WireNames) -> list[ChatCompletionMessageParam]:
    wire: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "system":
            wire.append({"role": "system", "content": message.content})
        elif message.role == "user":
            wire.append({"role": "user", "content": message.content})
        elif message.role == "tool":
            wire.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id or "",
                    "content": message.content,
                }
            )
        elif message.tool_calls:
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": names.wire(call.name), "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
            wire.append(
                {"role": "assistant", "content": message.content or None, "tool_calls": calls}
            )
        else:
            wire.append({"role": "assistant", "content": message.content})
    return wire


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    return Usage(usage.prompt_tokens, usage.completion_tokens)


def _as_llm_error(exc: openai.OpenAIError) -> LLMError:
    # Upstream error bodies may echo prompts or keys: clients get the kind and status only.
    if isinstance(exc, openai.APIStatusError):
        return answered(exc.status_code)
    # aiohttp's transport reports a refused connection as a connect timeout: either way,
    # the provider was never reached.
    connecting = isinstance(exc.__cause__, httpx2.ConnectTimeout)
    if isinstance(exc, openai.APITimeoutError) and not connecting:
        return LLMUnavailableError("the language model provider timed out")
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailableError("the language model provider could not be reached")
    return LLMError("the language model provider failed")

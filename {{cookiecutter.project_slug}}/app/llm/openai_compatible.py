"""OpenAI, Ollama, vLLM or any server of OpenAI's chat-completions API, tools and structured
output (response_format) included.

The openai SDK sends the request (auth, retries, timeouts, status errors); a stream's chunks
are read here: the SDK's pydantic model of every chunk is much of the api's CPU per relayed
token, while validating just the fields a turn uses, in pydantic-core, costs a fraction of
that and still refuses a chunk of the wrong shape.
"""

from collections.abc import AsyncIterator, Sequence
from typing import NotRequired, TypedDict, cast

import httpx2
import openai
from openai.types import chat, shared_params
from pydantic import TypeAdapter, ValidationError

from app.llm.base import ChatMessage, Completion, LLMError, OutputFormat, ToolCall, ToolSpec, Usage
from app.llm.sdk import PartialCall, WireNames, sdk_error, whole_calls


class OpenAICompatibleProvider:
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
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion:
        names = WireNames(tools)
        fields = {
            "model": self.model,
            "messages": _to_wire(messages, names),
            "tools": _tools(tools, names),
            "response_format": _response_format(output),
            "max_completion_tokens": self._max_completion_tokens,
            "max_tokens": self._max_tokens,
        }
        try:
            # The SDK's post (auth, retries, timeouts, status errors) without create's walk
            # over the request's typed dicts, nor its models of the answer: both a large share
            # of a busy worker's CPU, the body being plain JSON already.
            body = {name: value for name, value in fields.items() if value is not openai.omit}
            raw = await self._client.post("/chat/completions", body=body, cast_to=bytes)
            answer = _ANSWER.validate_json(raw)
        except openai.OpenAIError as exc:
            raise sdk_error(exc, openai) from exc
        except ValidationError:
            raise LLMError("the language model provider sent a malformed answer") from None
        if not answer["choices"]:
            raise LLMError("the language model returned no choices")
        message, counted = answer["choices"][0]["message"], answer.get("usage")
        calls = tuple(
            ToolCall(
                call["id"], names.ours(call["function"]["name"]), call["function"]["arguments"]
            )
            for call in message.get("tool_calls") or ()
            if call.get("type", "function") == "function"
        )
        return Completion(message.get("content") or "", calls, _usage(counted))

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        parts: list[str] = []
        calls: dict[int, PartialCall] = {}
        usage = Usage()
        names = WireNames(tools)
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=_to_wire(messages, names),
                tools=_tools(tools, names),
                response_format=_response_format(output),
                max_completion_tokens=self._max_completion_tokens,
                max_tokens=self._max_tokens,
                stream=True,
                # The last chunk then carries the call's token counts.
                stream_options={"include_usage": True},
            ) as response:
                # Read here rather than through the SDK's chunk models: see the module's doc.
                async for chunk in _chunks(response.http_response):
                    if counted := chunk.get("usage"):
                        usage = _usage(counted)
                    if not (choices := chunk.get("choices")):
                        continue
                    delta = choices[0]["delta"]
                    for piece in delta.get("tool_calls") or ():
                        call = calls.setdefault(piece["index"], PartialCall())
                        call.id = piece.get("id") or call.id
                        if function := piece.get("function"):
                            call.name = function.get("name") or call.name
                            call.arguments.append(function.get("arguments") or "")
                    if content := delta.get("content"):
                        parts.append(content)
                        yield content
        except (openai.OpenAIError, httpx2.TransportError) as exc:
            raise sdk_error(exc, openai) from exc
        yield Completion("".join(parts), whole_calls(calls, names), usage)

    async def aclose(self) -> None:
        await self._client.close()


def _tools(
    tools: Sequence[ToolSpec], names: WireNames
) -> list[chat.ChatCompletionFunctionToolParam] | openai.Omit:
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


def _response_format(
    output: OutputFormat | None,
) -> shared_params.ResponseFormatJSONSchema | openai.Omit:
    # Left out when there is none: some servers refuse a field they do not know.
    if output is None:
        return openai.omit
    schema: shared_params.response_format_json_schema.JSONSchema = {
        "name": output.name,
        "schema": dict(output.schema),
        "strict": output.strict,
    }
    return {"type": "json_schema", "json_schema": schema}


def _to_wire(
    messages: Sequence[ChatMessage], names: WireNames
) -> list[chat.ChatCompletionMessageParam]:
    wire: list[chat.ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "tool":
            call_id = message.tool_call_id or ""
            wire.append({"role": "tool", "tool_call_id": call_id, "content": message.content})
        elif message.tool_calls:
            calls: list[chat.ChatCompletionMessageFunctionToolCallParam] = [
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
            # A system, user or assistant text: one shape.
            text = {"role": message.role, "content": message.content}
            wire.append(cast(chat.ChatCompletionMessageParam, text))
    return wire


class FunctionDelta(TypedDict, total=False):
    name: str | None
    arguments: str | None


class ToolCallDelta(TypedDict):
    index: int
    id: NotRequired[str | None]
    function: NotRequired[FunctionDelta | None]


class Delta(TypedDict, total=False):
    content: str | None
    tool_calls: list[ToolCallDelta] | None


class Choice(TypedDict):
    delta: Delta


class PromptDetails(TypedDict, total=False):
    # Input tokens read from the provider's prompt cache (OpenAI caches long prompts by
    # itself), a part of prompt_tokens priced lower; other servers may send null or nothing.
    cached_tokens: int | None


class Counted(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_details: NotRequired[PromptDetails | None]


def _usage(counted: Counted | None) -> Usage:
    if not counted:
        return Usage()
    details = counted.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    return Usage(counted["prompt_tokens"], counted["completion_tokens"], cached)


class Chunk(TypedDict, total=False):
    choices: list[Choice]
    usage: Counted | None
    # A server that fails after the stream began says so in a chunk.
    error: object


_CHUNK: TypeAdapter[Chunk] = TypeAdapter(Chunk)


# An unstreamed answer: the fields a turn uses.
class Function(TypedDict):
    name: str
    arguments: str


class Call(TypedDict):
    id: str
    type: NotRequired[str]
    function: Function


class AnswerMessage(TypedDict, total=False):
    content: str | None
    tool_calls: list[Call] | None


class AnswerChoice(TypedDict):
    message: AnswerMessage


class Answer(TypedDict):
    choices: list[AnswerChoice]
    usage: NotRequired[Counted | None]


_ANSWER: TypeAdapter[Answer] = TypeAdapter(Answer)


async def _chunks(response: httpx2.Response) -> AsyncIterator[Chunk]:
    """Each Server-Sent Event's JSON until `[DONE]`; LLMError for an error or a bad chunk."""
    async for event in httpx2.EventSource(response):
        if not event.data:
            continue  # an event without data is not dispatched, as the SSE specification says
        if event.data == "[DONE]":
            return
        try:
            chunk = _CHUNK.validate_json(event.data)
        except ValidationError:
            raise LLMError("the language model provider sent a malformed stream") from None
        if chunk.get("error"):
            # Its text may echo the prompt: clients get the kind only, as for a status error.
            raise LLMError("the language model provider failed")
        yield chunk

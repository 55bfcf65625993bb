"""A streamed chat completion's chunks, read from the response's lines.

The openai SDK still sends the request (auth, retries, timeouts, status errors); only the
stream's chunks are read here. The SDK builds a pydantic model of every chunk, which cost
about half of the api's CPU per relayed token; validating just the fields a turn uses,
in pydantic-core, is a fraction of that, and a chunk of the wrong shape is still refused.
"""

from collections.abc import AsyncIterator
from typing import NotRequired, TypedDict

from pydantic import TypeAdapter, ValidationError

from app.llm.base import LLMError


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


class ChunkUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int


class Chunk(TypedDict, total=False):
    choices: list[Choice]
    usage: ChunkUsage | None
    # A server that fails after the stream began says so in a chunk.
    error: object


_CHUNK: TypeAdapter[Chunk] = TypeAdapter(Chunk)


async def chunks(lines: AsyncIterator[str]) -> AsyncIterator[Chunk]:
    """Each Server-Sent Event's JSON until `[DONE]`; LLMError for an error or a bad chunk."""
    async for data in _event_data(lines):
        if data == "[DONE]":
            return
        try:
            chunk = _CHUNK.validate_json(data)
        except ValidationError:
            raise LLMError("the language model provider sent a malformed stream") from None
        if chunk.get("error"):
            # Its text may echo the prompt: clients get the kind only, as for a status error.
            raise LLMError("the language model provider failed")
        yield chunk


async def _event_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each event: its `data:` lines joined, as the SSE specification says."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        elif not line and data:
            yield "\n".join(data)
            data = []
    if data:
        yield "\n".join(data)

"""Shared by the anthropic provider's tests: a provider on a real client, and callers of it."""

from collections.abc import Sequence

import anthropic
import pytest

from app.llm.anthropic import AnthropicProvider
from app.llm.base import ChatMessage, Completion, OutputFormat, ToolSpec

KEY = "test-anthropic-key"
LOOKUP = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {}})
CLOCK = ToolSpec("current_time", "Tell the time.", {"type": "object", "properties": {}})
BOTH = pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])


def provider_at(base_url: str, timeout: float | None = None) -> AnthropicProvider:
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url=base_url, max_retries=0, timeout=timeout or 30.0
    )
    return AnthropicProvider(client, "claude-test", max_tokens=256)


async def stream_pieces(
    provider: AnthropicProvider,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec] = (),
    output: OutputFormat | None = None,
) -> tuple[list[str], Completion]:
    """The streamed text pieces, and the one Completion that must come last."""
    pieces: list[str | Completion] = [p async for p in provider.stream(messages, tools, output)]
    *texts, last = pieces
    assert isinstance(last, Completion)
    assert all(isinstance(text, str) for text in texts)
    return [str(text) for text in texts], last


async def answer(
    provider: AnthropicProvider,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec] = (),
    *,
    stream: bool,
    output: OutputFormat | None = None,
) -> Completion:
    if stream:
        return (await stream_pieces(provider, messages, tools, output))[1]
    return await provider.complete(messages, tools, output)

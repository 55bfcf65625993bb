"""Shared by the gemini provider's tests: a provider on a real google-genai client, and a caller."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx2
import pytest

from app.llm.base import ChatMessage, Completion, OutputFormat, ToolSpec
from app.llm.gemini import GeminiProvider

KEY = "test-gemini-key"
MODEL = "gemini-test"

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx2"])


@asynccontextmanager
async def provider_at(
    base_url: str, transport: str = "aiohttp", timeout_ms: int | None = None
) -> AsyncIterator[GeminiProvider]:
    """A provider on a real client, sending through aiohttp (the SDK's choice here) or httpx2."""
    # Imported once app.llm.gemini has loaded the SDK (past a warning, see there).
    from google import genai
    from google.genai import types

    # An httpx2 client of our own makes the SDK send through it; the SDK leaves it open.
    own = httpx2.AsyncClient() if transport == "httpx2" else None
    options = types.HttpOptions(
        base_url=base_url,
        timeout=timeout_ms,
        # attempts=1: the SDK retries nothing. Without retry_options it retries no status
        # either, but through aiohttp it sends again, 1-10 s later, a request whose
        # connection failed or was closed unanswered.
        retry_options=types.HttpRetryOptions(attempts=1),
        httpx_async_client=own,
    )
    provider = GeminiProvider(genai.Client(api_key=KEY, http_options=options), MODEL)
    try:
        yield provider
    finally:
        await provider.aclose()
        if own is not None:
            await own.aclose()


async def answer(
    provider: GeminiProvider,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec] = (),
    *,
    stream: bool,
    pieces: list[str] | None = None,
    output: OutputFormat | None = None,
) -> tuple[list[str], Completion]:
    """The text pieces (into `pieces` as they come) and the Completion, by one call."""
    if not stream:
        return [], await provider.complete(messages, tools, output)
    pieces = [] if pieces is None else pieces
    async for item in provider.stream(messages, tools, output):
        if isinstance(item, Completion):
            return pieces, item
        pieces.append(item)
    raise AssertionError("the stream ended without a Completion")


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)

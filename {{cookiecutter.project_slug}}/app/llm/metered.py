"""Any provider, counted: calls by outcome, their duration and the tokens they report."""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from app.core.metrics import Metrics, Outcome, TokenKind
from app.llm.base import ChatMessage, Completion, LLMProvider, ToolSpec


class MeteredProvider:
    """Wrap a provider; every call it makes is counted once, whatever becomes of it."""

    def __init__(self, provider: LLMProvider, metrics: Metrics) -> None:
        self.name = provider.name
        self.model = provider.model
        self._provider = provider
        self._metrics = metrics

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        started = time.perf_counter()
        try:
            completion = await self._provider.complete(messages, tools)
        except asyncio.CancelledError:
            self._count("cancelled", started, None)
            raise
        except Exception:
            self._count("error", started, None)
            raise
        self._count("ok", started, completion)
        return completion

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | Completion]:
        started = time.perf_counter()
        outcome: Outcome = "error"
        completion: Completion | None = None
        try:
            async for piece in self._provider.stream(messages, tools):
                if isinstance(piece, Completion):
                    completion, outcome = piece, "ok"
                yield piece
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away before the answer was whole (or the server is stopping).
            outcome = "ok" if completion is not None else "cancelled"
            raise
        finally:
            self._count(outcome, started, completion)

    async def aclose(self) -> None:
        await self._provider.aclose()

    def _count(self, outcome: Outcome, started: float, completion: Completion | None) -> None:
        tokens: dict[TokenKind, int] = {}
        if completion is not None:
            usage = completion.usage
            tokens = {
                "prompt": usage.prompt_tokens,
                "completion": usage.completion_tokens,
                "cache_read": usage.cache_read_tokens,
                "cache_write": usage.cache_write_tokens,
            }
        seconds = time.perf_counter() - started
        self._metrics.model_call(self.name, self.model, outcome, seconds, tokens)

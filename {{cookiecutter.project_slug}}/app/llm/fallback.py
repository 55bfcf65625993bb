"""The configured model, then its fallbacks: a call moves on to the next only on
LLMUnavailableError (the provider cannot answer now); any other error surfaces at once, since
another provider would only hide it.

A stream moves on only while none of it has reached the client: after a token, a failure ends
the answer with an error (nothing of it is stored, as for any failed call) rather than splice a
second model's answer onto the first. Each provider's calls are counted on their own.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import get_args

from app.core.metrics import Metrics, Outcome, TokenKind
from app.llm.base import (
    ChatMessage,
    Completion,
    LLMProvider,
    LLMUnavailableError,
    OutputFormat,
    ToolSpec,
    Usage,
)

logger = logging.getLogger(__name__)


class FallbackProvider:
    """Providers in order; each answer says which one gave it."""

    def __init__(self, chain: Sequence[LLMProvider], metrics: Metrics) -> None:
        self._chain = tuple(chain)
        self._metrics = metrics
        self.name, self.model = chain[0].name, chain[0].model

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion:
        *firsts, last = self._chain
        for provider in firsts:
            try:
                return await self._complete(provider, messages, tools, output)
            except LLMUnavailableError as exc:
                _moving_on(provider, exc)
        return await self._complete(last, messages, tools, output)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        for index, provider in enumerate(self._chain):
            passed_on = False
            try:
                with self._counted(provider) as answer:
                    async for piece in provider.stream(messages, tools, output):
                        if isinstance(piece, Completion):
                            answer.append(piece)
                            yield _signed(piece, provider)
                            return
                        passed_on = True
                        yield piece
                return
            except LLMUnavailableError as exc:
                if passed_on or index == len(self._chain) - 1:
                    raise
                _moving_on(provider, exc)

    async def aclose(self) -> None:
        for provider in self._chain:
            await provider.aclose()

    async def _complete(
        self,
        provider: LLMProvider,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        output: OutputFormat | None,
    ) -> Completion:
        with self._counted(provider) as answer:
            answer.append(await provider.complete(messages, tools, output))
        return _signed(answer[0], provider)

    @contextmanager
    def _counted(self, provider: LLMProvider) -> Iterator[list[Completion]]:
        """Count one call of provider once, whatever becomes of it; its answer is appended."""
        started, answer = time.perf_counter(), list[Completion]()
        outcome: Outcome = "error"
        try:
            yield answer
            outcome = "ok" if answer else "error"
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away before the answer was whole (or the server is stopping).
            outcome = "ok" if answer else "cancelled"
            raise
        finally:
            usage = answer[0].usage if answer else Usage()
            tokens = {kind: getattr(usage, f"{kind}_tokens") for kind in get_args(TokenKind)}
            seconds = time.perf_counter() - started
            self._metrics.model_call(provider.name, provider.model, outcome, seconds, tokens)


def _signed(completion: Completion, provider: LLMProvider) -> Completion:
    return dataclasses.replace(completion, provider=provider.name, model=provider.model)


def _moving_on(provider: LLMProvider, exc: LLMUnavailableError) -> None:
    logger.warning(
        "model unavailable, trying the next in llm.fallbacks",
        extra={"provider": provider.name, "model": provider.model, "error": str(exc)},
    )

"""The configured model, then its fallbacks: a call moves on when one cannot answer now.

A provider that is unreachable, times out, rate-limits (429) or is overloaded (5xx) raises
LLMUnavailableError, and the next in the chain is asked the same. Any other error (a refused
key, a request the provider rejects) is a configuration or input problem: it surfaces at
once, since another provider would only hide it.

A streamed answer moves on only while nothing of it has been passed on: once a token has
reached the client, a failure ends the answer with an error (the client has the part it was
shown; nothing of it is stored, and the turn ends as any failed model call does) instead of a
second answer from another model spliced onto the first.
"""

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from app.llm.base import (
    ChatMessage,
    Completion,
    LLMProvider,
    LLMUnavailableError,
    ToolSpec,
)

logger = logging.getLogger(__name__)


class FallbackProvider:
    """Providers in order; each answer says which one gave it."""

    def __init__(self, chain: Sequence[LLMProvider]) -> None:
        if not chain:
            raise ValueError("a fallback chain needs at least one provider")
        self._chain = tuple(chain)
        self.name, self.model = chain[0].name, chain[0].model

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        for provider in self._chain[:-1]:
            try:
                return _signed(await provider.complete(messages, tools), provider)
            except LLMUnavailableError as exc:
                _moving_on(provider, exc)
        last = self._chain[-1]
        return _signed(await last.complete(messages, tools), last)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | Completion]:
        for index, provider in enumerate(self._chain):
            passed_on = False
            try:
                async for piece in provider.stream(messages, tools):
                    if isinstance(piece, Completion):
                        yield _signed(piece, provider)
                        return
                    passed_on = True
                    yield piece
            except LLMUnavailableError as exc:
                if passed_on or index == len(self._chain) - 1:
                    raise
                _moving_on(provider, exc)
            else:
                return

    async def aclose(self) -> None:
        for provider in self._chain:
            await provider.aclose()


def _signed(completion: Completion, provider: LLMProvider) -> Completion:
    return dataclasses.replace(completion, provider=provider.name, model=provider.model)


def _moving_on(provider: LLMProvider, exc: LLMUnavailableError) -> None:
    logger.warning(
        "model unavailable, trying the next in llm.fallbacks",
        extra={"provider": provider.name, "model": provider.model, "error": str(exc)},
    )

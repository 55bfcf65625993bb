"""The provider interface every language model backend implements."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


class LLMError(Exception):
    """The provider could not produce a reply; the message is safe to show to clients."""


class LLMProvider(Protocol):
    name: str

    async def complete(self, messages: Sequence[ChatMessage]) -> str:
        """Return the whole reply to the conversation."""
        ...

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Yield the reply piece by piece as the model produces it."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

"""An offline, deterministic provider: new projects and tests run with no key."""

import re
from collections.abc import AsyncIterator, Sequence

from app.llm.base import ChatMessage

_TOKENS = re.compile(r"\S+\s*|\s+")


class EchoProvider:
    """Reply with the last user message, headed by the system prompt it was given."""

    name = "echo"

    async def complete(self, messages: Sequence[ChatMessage]) -> str:
        return reply_for(messages)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        for token in _TOKENS.findall(reply_for(messages)):
            yield token

    async def aclose(self) -> None:
        return None


def reply_for(messages: Sequence[ChatMessage]) -> str:
    """Build the echo reply: it shows what a real model would have received."""
    system = next((m.content for m in messages if m.role == "system"), "")
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return f"[{system}] {last_user}" if system else last_user

"""The provider interface every language model backend implements."""

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for one tool; `arguments` is the JSON text it wrote, checked later."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    # An assistant message may ask for tools; a tool message answers one of those calls.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A JSON schema the answer's text must be valid for (a client's structured output)."""

    name: str
    schema: Mapping[str, Any]
    # Strict: the provider is asked to hold to the schema exactly, where it can.
    strict: bool = True


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of a model call (or a sum). prompt_tokens counts every input token, the cached
    ones included; the cache fields say how many were read or written (priced differently)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        # Field by field: astuple copies each value deeply, a busy worker's hot spot.
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    # Who answered: the provider's name and its model (with fallbacks, not always the first).
    provider: str = ""
    model: str = ""


class LLMError(Exception):
    """The provider could not produce a reply; the message is safe to show to clients."""


class LLMUnavailableError(LLMError):
    """The provider could not answer now (unreachable, timed out, rate-limited, overloaded,
    a 5xx): another provider may. Any other LLMError (a refused key, a bad request) is a
    configuration or input problem that another provider would only hide."""


def answered(status: int) -> LLMError:
    """The error for an HTTP status a provider answered with: a timeout (408), a rate limit
    (429) or a server error (5xx, 529 overloaded) is worth another provider's try."""
    error = LLMUnavailableError if status in (408, 429) or status >= 500 else LLMError
    return error(f"the language model provider answered HTTP {status}")


class LLMProvider(Protocol):
    # The provider's kind (echo, openai, anthropic, gemini) and the model it asks for.
    name: str
    model: str

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion: ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        """Yield the text piece by piece as the model produces it, then the whole Completion."""

    async def aclose(self) -> None: ...

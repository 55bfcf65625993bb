"""A provider for any endpoint that speaks OpenAI's chat-completions API."""

from collections.abc import AsyncIterator, Sequence

import openai
from openai.types.chat import ChatCompletionMessageParam

from app.llm.base import ChatMessage, LLMError


class OpenAICompatibleProvider:
    """Talk to OpenAI, Ollama, vLLM or any compatible server through the official SDK."""

    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

    async def complete(self, messages: Sequence[ChatMessage]) -> str:
        try:
            response = await self._client.chat.completions.create(
                model=self._model, messages=_to_wire(messages)
            )
        except openai.OpenAIError as exc:
            raise _as_llm_error(exc) from exc
        if not response.choices:
            raise LLMError("the language model returned no choices")
        return response.choices[0].message.content or ""

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        try:
            chunks = await self._client.chat.completions.create(
                model=self._model, messages=_to_wire(messages), stream=True
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise _as_llm_error(exc) from exc

    async def aclose(self) -> None:
        await self._client.close()


def _to_wire(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    wire: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "system":
            wire.append({"role": "system", "content": message.content})
        elif message.role == "user":
            wire.append({"role": "user", "content": message.content})
        else:
            wire.append({"role": "assistant", "content": message.content})
    return wire


def _as_llm_error(exc: openai.OpenAIError) -> LLMError:
    # Upstream error bodies may echo prompts or keys: clients get the kind and status only.
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"the language model provider answered HTTP {exc.status_code}")
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the language model provider timed out")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("the language model provider could not be reached")
    return LLMError("the language model provider failed")

"""Gemini through Google's official Gen AI SDK (google-genai): the Developer API or Vertex AI,
as the client was built; tools and structured output included."""

import json
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence

import aiohttp
import httpx
import httpx2
import pydantic

from app.llm.base import (
    ChatMessage,
    Completion,
    LLMError,
    LLMUnavailableError,
    OutputFormat,
    ToolCall,
    ToolSpec,
    Usage,
    answered,
)
from app.llm.sdk import WireNames, json_object

with warnings.catch_warnings():
    # google-genai 3.3's types.py has an invalid escape ("\\/") in a docstring: Python warns as
    # it compiles it (no .pyc written), and a suite that makes warnings errors could not import.
    warnings.simplefilter("ignore", SyntaxWarning)
    from google import genai
    from google.genai import errors, types

# The SDK's modules too: the factory builds the client from them.
__all__ = ["GeminiProvider", "genai", "types"]

# A call Gemini sent without an id gets one of ours, which Gemini never sees: it did not issue it.
_MINTED = "gemini-call-"
# Gemini 3 refuses (400) a step of the current turn whose first function call comes back
# without its thought signature. Google's documented stand-in, for a call whose signature we
# do not hold (another provider's, or one this process no longer remembers):
# https://ai.google.dev/gemini-api/docs/thought-signatures#faqs
_FOREIGN_SIGNATURE = b"skip_thought_signature_validator"
# The reasons a whole reply ends with; any other (SAFETY, RECITATION, ...) withheld or broke it.
_FINISHED = frozenset({types.FinishReason.STOP, types.FinishReason.MAX_TOKENS})
# Gemini 3 wants each step's thought signature back with the history, and a ToolCall has no
# place for one: a provider keeps the latest, by call id, until the turn's next step.
_MOST_SIGNATURES = 1024

_UNREACHABLE = (aiohttp.ClientConnectorError, httpx.ConnectError, httpx2.ConnectError)
# aiohttp's timeouts are TimeoutErrors.
_TIMEOUTS = (TimeoutError, httpx.TimeoutException, httpx2.TimeoutException)
_TRANSPORT = (aiohttp.ClientError, httpx.TransportError, httpx2.TransportError)
# The SDK sends through aiohttp when it is installed (it is: the openai extra), else httpx2.
# A reply that is not JSON: UnknownApiResponseError in a stream, JSONDecodeError when whole.
_MALFORMED = (errors.UnknownApiResponseError, json.JSONDecodeError, pydantic.ValidationError)
_FAILURES = (errors.APIError, *_MALFORMED, *_TIMEOUTS, *_TRANSPORT)


class GeminiProvider:
    name = "gemini"

    def __init__(self, client: genai.Client, model: str, *, max_tokens: int | None = None) -> None:
        self._client = client
        self.model = model
        self._max_tokens = max_tokens
        self._signatures: dict[str, bytes] = {}

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Completion:
        names = WireNames(tools)
        reply = _Reply(names, self._signatures)
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model,
                contents=_contents(messages, names, self._signatures),
                config=_config(messages, tools, names, self._max_tokens, output),
            )
        except _FAILURES as exc:
            raise _as_llm_error(exc) from exc
        reply.add(response)
        return reply.done()

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> AsyncIterator[str | Completion]:
        names = WireNames(tools)
        reply = _Reply(names, self._signatures)
        try:
            async for chunk in await self._client.aio.models.generate_content_stream(
                model=self.model,
                contents=_contents(messages, names, self._signatures),
                config=_config(messages, tools, names, self._max_tokens, output),
            ):
                for piece in reply.add(chunk):
                    yield piece
        except _FAILURES as exc:
            raise _as_llm_error(exc) from exc
        yield reply.done()

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        # The SDK also builds a sync HTTP client, unused here.
        self._client.close()


class _Reply:
    """One answer read from a whole response or from a stream's chunks."""

    def __init__(self, names: WireNames, signatures: dict[str, bytes]) -> None:
        self._names = names
        self._signatures = signatures
        self._text: list[str] = []
        self._calls: list[ToolCall] = []
        self._usage = Usage()
        self._finish: types.FinishReason | None = None
        self._blocked: types.BlockedReason | None = None

    def add(self, response: types.GenerateContentResponse) -> list[str]:
        """Take in a response (or chunk); return its new text pieces."""
        if (counted := response.usage_metadata) is not None:
            # A chunk's counts are the running total, not an increment; thinking is output.
            output = (counted.candidates_token_count or 0) + (counted.thoughts_token_count or 0)
            cached = counted.cached_content_token_count or 0
            self._usage = Usage(counted.prompt_token_count or 0, output, cached)
        if response.prompt_feedback is not None:
            self._blocked = response.prompt_feedback.block_reason or self._blocked
        if not response.candidates:
            return []
        candidate = response.candidates[0]
        self._finish = candidate.finish_reason or self._finish
        pieces: list[str] = []
        for part in (candidate.content.parts if candidate.content else None) or ():
            if (call := part.function_call) is not None:
                # Our loop pairs results with calls by id: one Gemini left out is made unique.
                call_id = call.id or f"{_MINTED}{uuid.uuid4().hex}"
                if part.thought_signature:
                    self._signatures[call_id] = part.thought_signature
                    if len(self._signatures) > _MOST_SIGNATURES:
                        del self._signatures[next(iter(self._signatures))]
                arguments = json.dumps(call.args or {})
                self._calls.append(ToolCall(call_id, self._names.ours(call.name or ""), arguments))
            elif part.text:
                pieces.append(part.text)
        self._text.extend(pieces)
        return pieces

    def done(self) -> Completion:
        # Messages name the reason only: clients may see them.
        if self._blocked is not None:
            raise LLMError(f"the language model provider blocked the prompt: {self._blocked.value}")
        if self._finish is None:
            raise LLMUnavailableError("the language model provider stopped answering")
        if self._finish not in _FINISHED:
            raise LLMError(f"the language model provider stopped the reply: {self._finish.value}")
        if not self._text and not self._calls:
            raise LLMError("the language model provider sent an empty reply")
        return Completion("".join(self._text), tuple(self._calls), self._usage)


def _config(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    names: WireNames,
    limit: int | None,
    output: OutputFormat | None,
) -> types.GenerateContentConfig:
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    declarations = [
        # parameters_json_schema takes JSON Schema as it is; `parameters` wants the SDK's
        # OpenAPI subset, which our pydantic schemas ($defs, anyOf, titles) do not keep to.
        types.FunctionDeclaration(
            name=names.wire(tool.name),
            description=tool.description,
            parameters_json_schema=dict(tool.parameters),
        )
        for tool in tools
    ]
    return types.GenerateContentConfig(
        system_instruction=system or None,
        tools=[types.Tool(function_declarations=declarations)] if declarations else None,
        # The agent loop runs the tools (approvals, limits, events); the SDK must not.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        max_output_tokens=limit,
        # Structured output: response_json_schema takes JSON Schema as it is, like
        # parameters_json_schema above (response_schema wants the OpenAPI subset).
        response_mime_type="application/json" if output else None,
        response_json_schema=dict(output.schema) if output else None,
    )


def _contents(
    messages: Sequence[ChatMessage], names: WireNames, signatures: dict[str, bytes]
) -> list[types.Content]:
    called = {call.id: call.name for message in messages for call in message.tool_calls}
    contents: list[types.Content] = []
    for index, message in enumerate(messages):
        if message.role == "user":
            contents.append(types.Content(role="user", parts=[types.Part(text=message.content)]))
        elif message.role == "assistant" and (parts := _model_parts(message, names, signatures)):
            contents.append(types.Content(role="model", parts=parts))
        elif message.role == "tool":
            name = names.wire(called.get(message.tool_call_id or "", "tool"))
            result = {"result": message.content}
            response = types.FunctionResponse(
                id=_sent_id(message.tool_call_id), name=name, response=result
            )
            part = types.Part(function_response=response)
            # Gemini wants the answers to one step's calls together, in one user turn.
            if index and messages[index - 1].role == "tool" and (answers := contents[-1].parts):
                answers.append(part)
            else:
                contents.append(types.Content(role="user", parts=[part]))
    return contents


def _model_parts(
    message: ChatMessage, names: WireNames, signatures: dict[str, bytes]
) -> list[types.Part]:
    parts = [types.Part(text=message.content)] if message.content else []
    for index, call in enumerate(message.tool_calls):
        signature = signatures.get(call.id)
        if signature is None and index == 0:
            # Only a step's first call carries one (Gemini signs parallel calls once).
            signature = _FOREIGN_SIGNATURE
        function_call = types.FunctionCall(
            id=_sent_id(call.id), name=names.wire(call.name), args=json_object(call.arguments)
        )
        parts.append(types.Part(function_call=function_call, thought_signature=signature))
    return parts


def _sent_id(call_id: str | None) -> str | None:
    return None if not call_id or call_id.startswith(_MINTED) else call_id


def _as_llm_error(exc: Exception) -> LLMError:
    # Upstream error bodies may echo prompts or keys: clients get the kind and status only.
    if isinstance(exc, errors.APIError):
        return answered(exc.code)
    if isinstance(exc, _UNREACHABLE):
        return LLMUnavailableError("the language model provider could not be reached")
    if isinstance(exc, _TIMEOUTS):
        return LLMUnavailableError("the language model provider timed out")
    if isinstance(exc, _TRANSPORT):
        return LLMUnavailableError("the language model provider stopped answering")
    return LLMError("the language model provider sent a malformed reply")

"""The gemini provider's failures, through the real google-genai client: which error each is."""

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from app.llm.base import LLMError, LLMUnavailableError
from app.llm.gemini import GeminiProvider
from tests.fake_gemini import FakeGemini
from tests.gemini_helpers import STREAMS, TRANSPORTS, answer, provider_at, user

# google-genai makes its aiohttp session from a subclass of aiohttp's, which aiohttp warns of.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
async def gemini(fake_gemini: FakeGemini) -> AsyncIterator[GeminiProvider]:
    async with provider_at(fake_gemini.base_url) as provider:
        yield provider


def _refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@STREAMS
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_unavailable_and_not_retried(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool, status: int
) -> None:
    fake_gemini.fail_with = status

    with pytest.raises(LLMUnavailableError) as caught:
        await answer(gemini, [user("hello")], stream=stream)

    assert str(caught.value) == f"the language model provider answered HTTP {status}"
    assert "prompt was" not in str(caught.value)
    assert fake_gemini.calls == 1


@STREAMS
@pytest.mark.parametrize("status", [400, 401, 403])
async def test_refused_requests_are_plain_errors(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool, status: int
) -> None:
    fake_gemini.fail_with = status

    with pytest.raises(LLMError) as caught:
        await answer(gemini, [user("hello")], stream=stream)

    assert not isinstance(caught.value, LLMUnavailableError)
    assert str(caught.value) == f"the language model provider answered HTTP {status}"
    assert "prompt was" not in str(caught.value)


@STREAMS
async def test_a_blocked_reply_is_a_plain_error(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool
) -> None:
    fake_gemini.block_with = "SAFETY"

    with pytest.raises(LLMError) as caught:
        await answer(gemini, [user("something dangerous")], stream=stream)

    assert not isinstance(caught.value, LLMUnavailableError)
    assert str(caught.value) == "the language model provider stopped the reply: SAFETY"


@STREAMS
async def test_a_reply_that_is_not_json_is_a_plain_error(
    gemini: GeminiProvider, fake_gemini: FakeGemini, stream: bool
) -> None:
    fake_gemini.malform = True

    with pytest.raises(LLMError) as caught:
        await answer(gemini, [user("hello")], stream=stream)

    assert not isinstance(caught.value, LLMUnavailableError)
    assert str(caught.value) == "the language model provider sent a malformed reply"
    assert fake_gemini.calls == 1


async def test_a_stream_cut_short_is_unavailable_after_its_first_piece(
    gemini: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    fake_gemini.drop_stream = True
    pieces: list[str] = []

    with pytest.raises(LLMUnavailableError, match="stopped answering"):
        await answer(gemini, [user("go on")], stream=True, pieces=pieces)

    assert pieces == ["fake "]


@TRANSPORTS
@STREAMS
async def test_an_unreachable_endpoint_is_unavailable(transport: str, stream: bool) -> None:
    async with provider_at(f"http://127.0.0.1:{_refused_port()}", transport) as provider:
        with pytest.raises(LLMUnavailableError) as caught:
            await answer(provider, [user("hello?")], stream=stream)

    assert str(caught.value) == "the language model provider could not be reached"


@TRANSPORTS
async def test_a_connection_closed_unanswered_is_unavailable_and_not_retried(
    fake_gemini: FakeGemini, transport: str
) -> None:
    fake_gemini.hang_up = True

    async with provider_at(fake_gemini.base_url, transport) as provider:
        with pytest.raises(LLMUnavailableError) as caught:
            await provider.complete([user("hello?")])

    assert str(caught.value) == "the language model provider stopped answering"
    assert fake_gemini.calls == 1


@TRANSPORTS
async def test_a_slow_endpoint_times_out_as_unavailable(
    fake_gemini: FakeGemini, transport: str
) -> None:
    fake_gemini.stall_seconds = 2.0

    async with provider_at(fake_gemini.base_url, transport, timeout_ms=100) as provider:
        with pytest.raises(LLMUnavailableError) as caught:
            await provider.complete([user("hello?")])

    assert str(caught.value) == "the language model provider timed out"

"""The anthropic provider's failures, against a real local HTTP server: which error each is."""

import socket
from collections.abc import AsyncIterator, Iterator

import anthropic
import pytest

from app.llm.anthropic import AnthropicProvider
from app.llm.base import ChatMessage, LLMError, LLMUnavailableError
from tests.anthropic_helpers import BOTH, KEY, answer, provider_at
from tests.fake_anthropic import FakeAnthropic


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    provider = provider_at(fake.base_url)
    yield provider
    await provider.aclose()


async def _failure(provider: AnthropicProvider, *, stream: bool) -> LLMError:
    with pytest.raises(LLMError) as caught:
        await answer(provider, [ChatMessage("user", "are you there?")], stream=stream)
    return caught.value


async def _broken_stream(provider: AnthropicProvider) -> tuple[list[str], LLMError]:
    """The text pieces a stream yielded before the error it ended with."""
    texts: list[str] = []
    try:
        async for piece in provider.stream([ChatMessage("user", "go on")]):
            assert isinstance(piece, str), "no Completion for a broken stream"
            texts.append(piece)
    except LLMError as error:
        return texts, error
    pytest.fail("the stream ended without an error")


@BOTH
@pytest.mark.parametrize("status", [429, 500, 503, 529])
async def test_rate_limits_and_server_errors_are_unavailable(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool, status: int
) -> None:
    fake.fail_with = status

    error = await _failure(provider, stream=stream)

    assert isinstance(error, LLMUnavailableError)
    assert str(error) == f"the language model provider answered HTTP {status}"
    assert fake.calls == 1


@BOTH
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_refusals_are_plain_errors_that_hide_the_upstream_body(
    provider: AnthropicProvider, fake: FakeAnthropic, stream: bool, status: int
) -> None:
    fake.fail_with = status

    error = await _failure(provider, stream=stream)

    assert not isinstance(error, LLMUnavailableError)
    assert str(error) == f"the language model provider answered HTTP {status}"
    assert "prompt" not in str(error)


@BOTH
async def test_a_refused_connection_is_unavailable(stream: bool) -> None:
    provider = provider_at("http://127.0.0.1:1")

    error = await _failure(provider, stream=stream)
    await provider.aclose()

    assert isinstance(error, LLMUnavailableError)
    assert str(error) == "the language model provider could not be reached"


@BOTH
async def test_a_server_that_never_answers_times_out(stream: bool) -> None:
    with socket.socket() as silent:
        # Connections are accepted by the kernel, and nothing is ever read or written.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        provider = provider_at(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)

        error = await _failure(provider, stream=stream)
        await provider.aclose()

    assert isinstance(error, LLMUnavailableError)
    assert str(error) == "the language model provider timed out"


@pytest.mark.parametrize(
    ("kind", "error_type", "detail"),
    [
        ("overloaded_error", LLMUnavailableError, "failed midway: overloaded_error"),
        ("api_error", LLMUnavailableError, "failed midway: api_error"),
        ("invalid_request_error", LLMError, "failed"),
    ],
)
async def test_an_error_event_midstream_ends_the_stream_with_an_error(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    kind: str,
    error_type: type[LLMError],
    detail: str,
) -> None:
    fake.error_midstream = kind

    texts, error = await _broken_stream(provider)

    assert texts == ["fake "]
    assert type(error) is error_type
    # The event's own message repeats the prompt: only its type may pass.
    assert str(error) == f"the language model provider {detail}"


async def test_a_stream_cut_short_is_no_whole_answer(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.cut_stream = True

    texts, error = await _broken_stream(provider)

    assert texts == ["fake "]
    assert isinstance(error, LLMUnavailableError)
    assert str(error) == "the language model provider stopped answering"


async def test_closing_the_provider_closes_its_client(fake: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=fake.base_url, max_retries=0)
    provider = AnthropicProvider(client, "claude-test", max_tokens=16)

    await provider.aclose()

    assert client.is_closed()

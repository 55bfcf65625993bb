"""llm.fallbacks: a model call moves to the next provider when one cannot answer now, and
never when the request or the key is wrong. Real SDKs against real local servers."""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.settings import Settings
from app.core.metrics import Metrics
from app.llm.base import ChatMessage, Completion, LLMError, LLMUnavailableError
from app.llm.factory import create_provider
from tests.conftest import make_settings, new_conversation_id, serve
from tests.fake_anthropic import FakeAnthropic
from tests.fake_openai import FakeOpenAI
from tests.metrics import sample, scrape

HELLO = [ChatMessage("user", "hello")]
BOTH = pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def _closed_port() -> str:
    """The address of a port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _chain(
    tmp_path: Path,
    first: str,
    second: str,
    database_url: str = "postgresql://unused@127.0.0.1/unused",
    redis_url: str = "redis://127.0.0.1/0",
) -> Settings:
    """anthropic at `first`, then openai at `second`, no retries of their own."""
    llm = {
        "provider": "anthropic",
        "model": "claude-test",
        "base_url": first,
        "max_retries": 0,
        "fallbacks": [{"provider": "openai", "model": "test-model", "base_url": second}],
    }
    return make_settings(tmp_path, database_url, redis_url, llm=llm)


async def _answer(settings: Settings, *, stream: bool) -> Completion:
    provider = create_provider(settings, Metrics())
    try:
        if not stream:
            return await provider.complete(HELLO)
        pieces = [piece async for piece in provider.stream(HELLO)]
        assert isinstance(pieces[-1], Completion)
        return pieces[-1]
    finally:
        await provider.aclose()


@BOTH
@pytest.mark.parametrize("status", [529, 429, 500])
async def test_an_overloaded_or_limited_provider_falls_back_to_the_next(
    tmp_path: Path,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    status: int,
    stream: bool,
) -> None:
    fake_anthropic.fail_with = status
    settings = _chain(tmp_path, fake_anthropic.base_url, fake_openai.base_url)

    completion = await _answer(settings, stream=stream)

    assert completion.content == "fake reply to: hello"
    assert (completion.provider, completion.model) == ("openai", "test-model")
    assert (fake_anthropic.calls, len(fake_openai.requests)) == (1, 1)


@BOTH
async def test_an_unreachable_provider_falls_back_to_the_next(
    tmp_path: Path, fake_openai: FakeOpenAI, stream: bool
) -> None:
    settings = _chain(tmp_path, _closed_port(), fake_openai.base_url)

    completion = await _answer(settings, stream=stream)

    assert (completion.provider, completion.content) == ("openai", "fake reply to: hello")


@BOTH
@pytest.mark.parametrize("status", [401, 400])
async def test_a_refused_key_or_request_surfaces_and_nothing_else_is_asked(
    tmp_path: Path,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    status: int,
    stream: bool,
) -> None:
    fake_anthropic.fail_with = status
    settings = _chain(tmp_path, fake_anthropic.base_url, fake_openai.base_url)

    with pytest.raises(LLMError) as raised:
        await _answer(settings, stream=stream)

    assert not isinstance(raised.value, LLMUnavailableError)
    assert str(raised.value) == f"the language model provider answered HTTP {status}"
    assert fake_openai.requests == []


async def test_a_stream_that_fails_after_its_first_token_does_not_switch(
    tmp_path: Path, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.error_midstream = "overloaded_error"
    settings = _chain(tmp_path, fake_anthropic.base_url, fake_openai.base_url)
    provider = create_provider(settings, Metrics())
    shown: list[str | Completion] = []

    async def read() -> None:
        async for piece in provider.stream(HELLO):
            shown.append(piece)

    with pytest.raises(LLMUnavailableError):
        await read()
    await provider.aclose()

    assert shown
    assert all(isinstance(piece, str) for piece in shown)
    assert "fake reply to: hello".startswith("".join(str(piece) for piece in shown))
    assert fake_openai.requests == []


async def test_the_last_provider_failing_fails_the_call(
    tmp_path: Path, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.fail_with = 529
    fake_openai.fail_with = 503
    settings = _chain(tmp_path, fake_anthropic.base_url, fake_openai.base_url)

    with pytest.raises(LLMUnavailableError, match="HTTP 503"):
        await _answer(settings, stream=False)


async def test_who_answered_is_stored_shown_and_counted(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    connection: AsyncConnection,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
) -> None:
    fake_anthropic.fail_with = 529
    settings = _chain(tmp_path, fake_anthropic.base_url, fake_openai.base_url, migrated, redis_url)
    async for client in serve(settings, connection):
        exchange = await _send(client, "hello")
        text = await scrape(client)

    assert exchange["assistant_message"]["content"] == "fake reply to: hello"
    assert (exchange["assistant_message"]["provider"], exchange["assistant_message"]["model"]) == (
        "openai",
        "test-model",
    )
    anthropic = {"provider": "anthropic", "model": "claude-test"}
    openai = {"provider": "openai", "model": "test-model"}
    assert sample(text, "llm_calls_total", **anthropic, outcome="error") == 1
    assert sample(text, "llm_calls_total", **openai, outcome="ok") == 1


async def _send(client: AsyncClient, content: str) -> dict[str, Any]:
    conversation = await new_conversation_id(client)
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": content}
    )
    assert response.status_code == 201, response.text
    exchange: dict[str, Any] = response.json()
    return exchange

"""Build the model chain that config.yaml names: llm.provider, then llm.fallbacks."""

from pydantic import HttpUrl

from app.config.sections import LLMConfig
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.llm.base import LLMProvider
from app.llm.echo import EchoProvider
from app.llm.fallback import FallbackProvider
from app.llm.metered import MeteredProvider

# Each SDK is imported only when a provider of its kind is used: a process on one provider
# does not load the others (the SDKs are several megabytes of modules each).


def create_provider(settings: Settings, metrics: Metrics) -> LLMProvider:
    """The configured provider and its fallbacks, each counted into metrics on its own."""
    chain = [
        MeteredProvider(_provider(settings, link.provider, link.model, link.base_url), metrics)
        for link in settings.config.llm.chain
    ]
    return FallbackProvider(chain)


def _provider(settings: Settings, kind: str, model: str, base_url: HttpUrl | None) -> LLMProvider:
    """One provider with its own HTTP connection pool."""
    llm = settings.config.llm
    key = settings.key_of(kind)
    secret = key.get_secret_value() if key else None
    url = str(base_url) if base_url else None
    if kind == "openai":
        return _openai(llm, model, url, secret, _calls(settings))
    if kind == "anthropic":
        return _anthropic(llm, model, url, secret, _calls(settings))
    if kind == "gemini":
        return _gemini(llm, model, url, secret)
    return EchoProvider()


def _openai(
    llm: LLMConfig, model: str, url: str | None, key: str | None, connections: int
) -> LLMProvider:
    import httpx2
    import openai

    from app.llm.openai_compatible import OpenAICompatibleProvider

    client = openai.AsyncOpenAI(
        api_key=key,
        base_url=url,
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
        # aiohttp's C parser reads a streamed reply for less CPU per token than the SDK's
        # default transport: more streams held per process.
        http_client=openai.DefaultAioHttpClient(limits=httpx2.Limits(max_connections=connections)),
    )
    return OpenAICompatibleProvider(client, model, max_tokens=llm.max_tokens, own_api=url is None)


def _anthropic(
    llm: LLMConfig, model: str, url: str | None, key: str | None, connections: int
) -> LLMProvider:
    import anthropic
    import httpx2

    from app.llm.anthropic import AnthropicProvider

    client = anthropic.AsyncAnthropic(
        api_key=key,
        base_url=url.rstrip("/") if url else None,
        # Always a timeout: without one the SDK refuses a large max_tokens unstreamed.
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
        # As for openai: aiohttp's parser halves the SDK's CPU per streamed token.
        http_client=anthropic.DefaultAioHttpClient(
            limits=httpx2.Limits(max_connections=connections)
        ),
    )
    return AnthropicProvider(client, model, max_tokens=llm.max_tokens)


def _gemini(llm: LLMConfig, model: str, url: str | None, key: str | None) -> LLMProvider:
    # The SDK as app.llm.gemini imports it (with the guard its import needs).
    from app.llm.gemini import GeminiProvider, genai, types

    options = types.HttpOptions(
        base_url=url,
        timeout=int(llm.timeout_seconds * 1000),
        # attempts counts the first: llm.max_retries more on 408, 429 and 5xx.
        retry_options=types.HttpRetryOptions(attempts=llm.max_retries + 1),
    )
    client = genai.Client(api_key=key, http_options=options)
    return GeminiProvider(client, model, max_tokens=llm.max_tokens)


def _calls(settings: Settings) -> int:
    """A connection for every model call a process admits at once: its streams, the requests
    with a body it reads (a whole turn holds one), a worker's runs. None then waits for the
    pool, whose default (1,000) would have held back streams past it."""
    config = settings.config
    streams, bodies = config.agent.max_streams, config.requests.max_bodies_in_flight
    return streams + bodies + config.worker.concurrency

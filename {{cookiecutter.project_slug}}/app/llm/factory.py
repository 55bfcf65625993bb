"""Build the provider that config.yaml names."""

from app.core.config import LLMConfig, Settings
from app.llm.base import LLMProvider
from app.llm.echo import EchoProvider

# Each SDK is imported only when its provider is used: a process on one provider does not
# load the others (the SDKs are several megabytes of modules each).


def create_provider(settings: Settings) -> LLMProvider:
    """Return the configured provider, with its own HTTP connection pool."""
    llm = settings.config.llm
    key = settings.provider_key.get_secret_value() if settings.provider_key else None
    if llm.provider == "openai":
        return _openai(llm, key, _calls(settings))
    if llm.provider == "anthropic":
        return _anthropic(llm, key, _calls(settings))
    if llm.provider == "gemini":
        return _gemini(llm, key)
    return EchoProvider()


def _openai(llm: LLMConfig, key: str | None, connections: int) -> LLMProvider:
    import httpx2
    import openai

    from app.llm.openai_compatible import OpenAICompatibleProvider

    client = openai.AsyncOpenAI(
        api_key=key,
        base_url=str(llm.base_url) if llm.base_url else None,
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
        # aiohttp's C parser reads a streamed reply for less CPU per token than the SDK's
        # default transport: more streams held per process.
        http_client=openai.DefaultAioHttpClient(limits=httpx2.Limits(max_connections=connections)),
    )
    return OpenAICompatibleProvider(client, llm.model)


def _anthropic(llm: LLMConfig, key: str | None, connections: int) -> LLMProvider:
    import anthropic
    import httpx2

    from app.llm.anthropic import AnthropicProvider

    client = anthropic.AsyncAnthropic(
        api_key=key,
        base_url=str(llm.base_url).rstrip("/") if llm.base_url else None,
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
        http_client=anthropic.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=connections)
        ),
    )
    return AnthropicProvider(client, llm.model, max_tokens=llm.max_tokens)


def _gemini(llm: LLMConfig, key: str | None) -> LLMProvider:
    # The SDK as app.llm.gemini imports it (with the guard its import needs).
    from app.llm.gemini import GeminiProvider, genai, types

    options = types.HttpOptions(
        base_url=str(llm.base_url) if llm.base_url else None,
        timeout=int(llm.timeout_seconds * 1000),
        # attempts counts the first: llm.max_retries more on 408, 429 and 5xx.
        retry_options=types.HttpRetryOptions(attempts=llm.max_retries + 1),
    )
    client = genai.Client(api_key=key, http_options=options)
    return GeminiProvider(client, llm.model, max_tokens=llm.max_tokens)


def _calls(settings: Settings) -> int:
    """A connection for every model call a process admits at once: its streams, the requests
    with a body it reads (a whole turn holds one), a worker's runs. None then waits for the
    pool, whose default (1,000) would have held back streams past it."""
    config = settings.config
    streams, bodies = config.agent.max_streams, config.requests.max_bodies_in_flight
    return streams + bodies + config.worker.concurrency

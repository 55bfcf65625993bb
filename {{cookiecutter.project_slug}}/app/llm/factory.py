"""Build the model chain that config.yaml names: llm.provider, then llm.fallbacks."""

from app.config.sections import FallbackConfig
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.llm.base import LLMProvider
from app.llm.echo import EchoProvider
from app.llm.fallback import FallbackProvider

# Each SDK is imported only when a provider of its kind is used: a process on one provider
# does not load the others (the SDKs are several megabytes of modules each).


def create_provider(settings: Settings, metrics: Metrics) -> LLMProvider:
    """The configured provider and its fallbacks, each counted into metrics on its own."""
    chain = [_provider(settings, link) for link in settings.config.llm.chain]
    return FallbackProvider(chain, metrics)


def _provider(settings: Settings, link: FallbackConfig) -> LLMProvider:
    """One provider with its own HTTP connection pool."""
    llm, kind = settings.config.llm, link.provider
    key = settings.key_of(kind)
    secret = key.get_secret_value() if key else None
    url = str(link.base_url) if link.base_url else None
    if kind == "gemini":
        # The SDK as app.llm.gemini imports it (with the guard its import needs).
        from app.llm.gemini import GeminiProvider, genai, types

        options = types.HttpOptions(
            base_url=url,
            timeout=int(llm.timeout_seconds * 1000),
            # attempts counts the first: llm.max_retries more on 408, 429 and 5xx.
            retry_options=types.HttpRetryOptions(attempts=llm.max_retries + 1),
        )
        gemini = genai.Client(api_key=secret, http_options=options)
        return GeminiProvider(gemini, link.model, max_tokens=llm.max_tokens)
    if kind not in ("openai", "anthropic"):
        return EchoProvider()
    import httpx2

    # aiohttp's C parser reads a stream for less CPU per token than the SDKs' default transport.
    # A connection for every model call a process admits at once (its streams, the bodies it
    # reads, a worker's runs): none waits for the pool, whose default (1,000) would hold some.
    config = settings.config
    calls = config.agent.max_streams + config.requests.max_bodies_in_flight
    limits = httpx2.Limits(max_connections=calls + config.worker.concurrency)
    if kind == "openai":
        import openai

        from app.llm.openai_compatible import OpenAICompatibleProvider

        client = openai.AsyncOpenAI(
            api_key=secret,
            base_url=url,
            timeout=llm.timeout_seconds,
            max_retries=llm.max_retries,
            http_client=openai.DefaultAioHttpClient(limits=limits),
        )
        return OpenAICompatibleProvider(
            client, link.model, max_tokens=llm.max_tokens, own_api=url is None
        )
    import anthropic

    from app.llm.anthropic import AnthropicProvider

    claude = anthropic.AsyncAnthropic(
        api_key=secret,
        base_url=url.rstrip("/") if url else None,
        # Always a timeout: without one the SDK refuses a large max_tokens unstreamed.
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
        http_client=anthropic.DefaultAioHttpClient(limits=limits),
    )
    return AnthropicProvider(claude, link.model, max_tokens=llm.max_tokens)

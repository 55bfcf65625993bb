"""Build the provider that config.yaml names."""

from app.core.config import Settings
from app.llm.base import LLMProvider
from app.llm.echo import EchoProvider


def create_provider(settings: Settings) -> LLMProvider:
    """Return the configured provider; the openai one gets its own HTTP connection pool."""
    llm = settings.config.llm
    if llm.provider == "echo":
        return EchoProvider()
    # Imported here: the SDK holds about 20 MB that a process on the echo provider never uses.
    import httpx2
    import openai

    from app.llm.openai_compatible import OpenAICompatibleProvider

    key = settings.openai_api_key
    client = openai.AsyncOpenAI(
        api_key=key.get_secret_value() if key else None,
        base_url=str(llm.base_url) if llm.base_url else None,
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
        # aiohttp's C parser reads a streamed reply for about a third less CPU per token
        # than the SDK's default transport: more streams held per process.
        http_client=openai.DefaultAioHttpClient(
            limits=httpx2.Limits(max_connections=_calls(settings))
        ),
    )
    return OpenAICompatibleProvider(client, llm.model)


def _calls(settings: Settings) -> int:
    """A connection for every model call a process admits at once: its streams, the requests
    with a body it reads (a whole turn holds one), a worker's runs. None then waits for the
    pool, whose default (1,000) would have held back streams past it."""
    config = settings.config
    streams, bodies = config.agent.max_streams, config.requests.max_bodies_in_flight
    return streams + bodies + config.worker.concurrency

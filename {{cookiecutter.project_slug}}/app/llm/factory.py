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
    import openai

    from app.llm.openai_compatible import OpenAICompatibleProvider

    key = settings.openai_api_key
    client = openai.AsyncOpenAI(
        api_key=key.get_secret_value() if key else None,
        base_url=str(llm.base_url) if llm.base_url else None,
        timeout=llm.timeout_seconds,
        max_retries=llm.max_retries,
    )
    return OpenAICompatibleProvider(client, llm.model)

"""Settings: secrets and URLs from the environment, everything else from config.yaml."""

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

from app.core.errors import ConfigError as ConfigError  # the one callers know it by
from app.core.mcp_config import McpServers
from app.core.secret_files import FileVariantsSource
from app.core.urls import async_database_url, with_password

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = Path("config/config.yaml")
PLACEHOLDER_PREFIX = "change-me"
RELAXED_ENVIRONMENTS = frozenset({"development", "test"})
# No ':' (it separates a name from its key) and nothing that needs quoting in SQL or logs.
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class _Section(BaseModel):
    # extra="forbid" turns a typo in config.yaml into a start-up error naming the key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMConfig(_Section):
    provider: Literal["echo", "openai"] = "echo"
    model: str = Field(default="gpt-4o-mini", min_length=1)
    base_url: HttpUrl | None = None
    timeout_seconds: PositiveFloat = 60.0
    max_retries: int = Field(default=2, ge=0, le=10)
    system_prompt: str = "You are a helpful assistant."
    history_limit: PositiveInt = 50
    max_file_chars: PositiveInt = 20_000


class AgentConfig(_Section):
    """The tool loop: how far it may go, and what its tools may touch."""

    # Model calls per turn; a turn that still asks for tools then stops with "max_steps".
    max_steps: PositiveInt = Field(default=8, le=100)
    tool_timeout_seconds: PositiveFloat = 10.0
    # Longer tool results are cut before they reach the model and the database.
    max_tool_result_chars: PositiveInt = 20_000
    # http_get is offered to the model only when hosts ("example.com" or "host:port") are listed.
    http_allowed_hosts: frozenset[str] = frozenset()
    http_max_bytes: PositiveInt = 100_000
    # MCP servers whose allowed tools join the built-in ones as "server.tool".
    mcp_servers: McpServers = ()
    # How often each process lists the servers' tools again (a server that was down
    # comes back, a server that went down leaves).
    mcp_refresh_seconds: PositiveFloat = 60.0
    # What one MCP call or listing may read from its server, in all; past it, a tool error.
    mcp_max_response_bytes: PositiveInt = 1024 * 1024
    # Streamed turns (SSE messages, chat completion and AG-UI streams) one api process keeps
    # open at once, in all (more answer 503) and per key (more answer 429), both with
    # Retry-After: each holds a model call, and its tools, for as long as it runs.
    max_streams: PositiveInt = Field(default=100, le=10_000)
    max_streams_per_key: PositiveInt = Field(default=8, le=1000)
    # Tools whose calls wait for a person: a background run stops awaiting approval
    # (POST /v1/runs/{id}/approvals); an interactive turn cannot wait, so the model is told
    # the call needs a background run. Built-in names, or "server.tool" for MCP tools.
    require_approval: frozenset[str] = frozenset()

    @field_validator("require_approval")
    @classmethod
    def _known_tools(cls, names: frozenset[str]) -> frozenset[str]:
        # A misspelt name would leave a dangerous tool ungated, so it stops the start-up.
        # Imported here: the registry's tools import this module.
        from app.agent.registry import TOOLS

        builtin = {t.name for t in TOOLS}
        unknown = sorted(n for n in names if "." not in n and n not in builtin)
        if unknown:
            raise ValueError(f"no built-in tool named {', '.join(unknown)} (MCP: server.tool)")
        return names


class WorkerConfig(_Section):
    """Background runs: the worker service and the queue it takes runs from."""

    # Runs one worker process executes at once.
    concurrency: PositiveInt = Field(default=4, le=100)
    # A running run's lease; a worker renews it while it works. When a worker dies the
    # lease runs out and another worker retries the run (or fails it after max_attempts).
    visibility_timeout_seconds: PositiveFloat = 60.0
    max_attempts: PositiveInt = Field(default=3, le=20)
    # How often each worker looks for runs whose lease ran out, and proves it is alive.
    sweep_seconds: PositiveFloat = 5.0
    # How often GET /v1/runs/{id}/events looks for new events, and how long one stream lasts
    # (a client resumes with Last-Event-ID).
    events_poll_seconds: PositiveFloat = 0.5
    events_stream_seconds: PositiveFloat = 300.0
    # Event streams one api process keeps open at once, in all (more answer 503) and per
    # key (more answer 429), both with Retry-After: each stream polls the database.
    max_event_streams: PositiveInt = Field(default=100, le=10_000)
    max_event_streams_per_key: PositiveInt = Field(default=4, le=1000)


class OpenAIApiConfig(_Section):
    """The OpenAI-compatible endpoint: GET /v1/models and POST /v1/chat/completions."""

    # The one model id it lists and answers to. It names the agent (its tools, its system
    # prompt), not llm.model, and stays put when llm.model changes, so clients keep working.
    model_name: str = Field(default="agent", min_length=1, max_length=200)
    # Messages one chat completion may carry (clients resend the whole chat each time).
    max_messages: PositiveInt = Field(default=100, le=10_000)


class UploadsConfig(_Section):
    max_bytes: PositiveInt = 10 * 1024 * 1024
    max_total_bytes_per_key: PositiveInt = 1000 * 1024 * 1024
    max_concurrent: PositiveInt = 16
    max_concurrent_per_key: PositiveInt = 4
    allowed_content_types: frozenset[str] = frozenset(
        {
            "text/plain",
            "text/markdown",
            "text/csv",
            "application/json",
            "application/pdf",
            "image/png",
            "image/jpeg",
        }
    )

    @model_validator(mode="after")
    def _quota_holds_one_file(self) -> Self:
        if self.max_total_bytes_per_key < self.max_bytes:
            raise ValueError("max_total_bytes_per_key must be at least max_bytes")
        return self


class RequestsConfig(_Section):
    """Bounds on what requests may hold: each one, and all of them together."""

    # JSON bodies are read into memory whole; the longest valid message fits, even with
    # every character escaped as a surrogate pair (12 bytes).
    max_json_bytes: PositiveInt = 512 * 1024
    max_bodies_in_flight: PositiveInt = 64
    body_timeout_seconds: PositiveFloat = 60.0


class RateLimitConfig(_Section):
    requests: PositiveInt = 60
    window_seconds: PositiveInt = 60


class RedisConfig(_Section):
    # Every Redis command (a rate-limit check, the health PING) gives up after this long.
    timeout_seconds: PositiveFloat = 1.0


class HealthConfig(_Section):
    timeout_seconds: PositiveFloat = 1.0


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file_max_bytes: PositiveInt = 10 * 1024 * 1024
    file_backup_count: int = Field(default=5, ge=0)


class PlaygroundConfig(_Section):
    """The page at /playground where a person tries the agent with a key."""

    # auto: on when ENVIRONMENT is development, off otherwise (a page that takes keys has no
    # place on a production host unless someone decides so); true or false decide.
    enabled: Literal["auto"] | bool = "auto"


class MetricsConfig(_Section):
    """Prometheus metrics: the api's /metrics and the worker's own metrics endpoint."""

    # Off: no /metrics (404), no per-request counting, no worker endpoint.
    enabled: bool = True
    # The worker has no HTTP server of its own; prometheus_client serves its metrics here.
    # All interfaces, so that Prometheus on the container network reaches it; compose does
    # not publish it. Outside a container, 127.0.0.1 keeps it on the machine.
    worker_host: str = "0.0.0.0"  # noqa: S104
    worker_port: int = Field(default=9101, ge=1, le=65535)


class AppConfig(_Section):
    """The contents of config.yaml."""

    llm: LLMConfig = LLMConfig()
    agent: AgentConfig = AgentConfig()
    worker: WorkerConfig = WorkerConfig()
    openai_api: OpenAIApiConfig = OpenAIApiConfig()
    uploads: UploadsConfig = UploadsConfig()
    requests: RequestsConfig = RequestsConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    redis: RedisConfig = RedisConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    playground: PlaygroundConfig = PlaygroundConfig()


def with_password_from(url: str, info: ValidationInfo, password_field: str) -> str:
    """Put a password given on its own (a secret file) into the URL being validated.

    The password field is declared before the URL field, so it is already validated (in
    info.data) when the URL is: the merge happens during validation, on plain values.
    """
    password = info.data.get(password_field)
    if isinstance(password, SecretStr):
        return with_password(url, password.get_secret_value())
    return url


class _EnvSettings(BaseSettings):
    """Values from the environment, NAME_FILE variants and .env, in that order."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = FileVariantsSource(settings_cls)
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings


class DatabaseSettings(_EnvSettings):
    """The part of the settings that migrations need: the database URL and password."""

    # The password before the URL: validating the URL merges it in.
    database_password: SecretStr | None = None
    database_url: SecretStr

    @field_validator("database_url", mode="before")
    @classmethod
    def _asyncpg_with_password(cls, value: Any, info: ValidationInfo) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        return with_password_from(async_database_url(raw), info, "database_password")


class ApiKey(BaseModel):
    """One entry of API_KEYS: `name:key`, or a bare key."""

    model_config = ConfigDict(frozen=True)

    # The owner of the rows this key creates, when given; several values may share a name
    # (old and new during a rotation).
    name: str | None
    value: SecretStr


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Split a comma-separated API_KEYS value into named or bare keys.

    Messages name an entry by its position, never by its text: that text may be a key.
    """
    keys = []
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    for position, entry in enumerate(entries, start=1):
        name, separator, value = entry.partition(":")
        if not separator:
            name, value = "", entry
        elif not KEY_NAME.fullmatch(name):
            raise ValueError(
                f"entry {position}: a key name is 1-64 letters, digits, '_', '.', '@' or '-' "
                "(write each entry as name:key or as a bare key without ':')"
            )
        if not value.strip():
            raise ValueError(f"entry {position} ({name}) has no key after the ':'")
        keys.append(ApiKey(name=name or None, value=SecretStr(value.strip())))
    values = [key.value.get_secret_value() for key in keys]
    if len(set(values)) != len(values):
        raise ValueError("the same key is listed twice")
    return tuple(keys)


class KeySettings(_EnvSettings):
    """Who may call the api, and the secret that turns a key into the owner of its rows."""

    api_keys: Annotated[tuple[ApiKey, ...], NoDecode]
    secret_key: SecretStr

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return parse_api_keys(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _some_key(self) -> Self:
        if not self.api_keys:
            raise ValueError("API_KEYS must hold at least one key")
        return self


class Settings(DatabaseSettings, KeySettings):
    """Everything the service reads at start-up."""

    environment: Literal["development", "test", "production"] = "production"
    # The password before the URL: validating the URL merges it in.
    redis_password: SecretStr | None = None
    redis_url: SecretStr
    openai_api_key: SecretStr | None = None
    logs_dir: Path = Path("logs")
    uploads_dir: Path = Path("uploads")
    config: AppConfig

    @property
    def playground_enabled(self) -> bool:
        enabled = self.config.playground.enabled
        return self.environment == "development" if enabled == "auto" else enabled

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme_with_password(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return SecretStr(with_password_from(url, info, "redis_password"))

    @model_validator(mode="after")
    def _secrets_are_real(self) -> Self:
        if self.config.llm.provider == "openai" and self.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY is required when llm.provider is openai")
        unsafe = self._placeholder_secrets()
        if unsafe and self.environment not in RELAXED_ENVIRONMENTS:
            raise ValueError(f"{unsafe[0]} is empty or a placeholder; set a real secret")
        return self

    def _placeholder_secrets(self) -> list[str]:
        secrets = [
            ("SECRET_KEY", self.secret_key.get_secret_value()),
            ("DATABASE_URL password", make_url(self.database_url.get_secret_value()).password),
            ("REDIS_URL password", urlsplit(self.redis_url.get_secret_value()).password),
            *(("API_KEYS", key.value.get_secret_value()) for key in self.api_keys),
        ]
        if self.config.llm.provider == "openai" and self.openai_api_key is not None:
            secrets.append(("OPENAI_API_KEY", self.openai_api_key.get_secret_value()))
        return [name for name, value in secrets if _is_placeholder(value)]


def _is_placeholder(value: str | None) -> bool:
    return not value or value.startswith(PLACEHOLDER_PREFIX)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read config.yaml, failing with a message that names the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (set CONFIG_FILE)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if loc and loc[0] == "config":
            name = "config.yaml: " + ".".join(loc[1:])
        else:
            name = ".".join(loc).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(message if name == "settings" else f"{name}: {message}")
    return "; ".join(problems)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, .env and the config file."""
    config_file = Path(os.environ.get("CONFIG_FILE", DEFAULT_CONFIG_FILE))
    raw_config = read_config_file(config_file)
    try:
        return Settings(config=raw_config, **overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_describe(exc)}") from None


def load_part[S: BaseSettings](settings_cls: type[S]) -> S:
    """Build one part of the settings (migrations need only some), failing as load_settings does."""
    try:
        return settings_cls()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_describe(exc)}") from None


@lru_cache
def get_settings() -> Settings:
    """Return the settings, read once per process."""
    return load_settings()

"""The sections of config.yaml, each a frozen model that refuses keys it does not know.

What each setting means is written beside it in config/config.yaml, which shows every one
(a test holds it to these models); here are their types, defaults and bounds.
"""

from decimal import Decimal
from typing import Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from app.config.mcp import McpServers


class _Section(BaseModel):
    # extra="forbid" turns a typo in config.yaml into a start-up error naming the key.
    model_config = ConfigDict(extra="forbid", frozen=True)


Provider = Literal["echo", "openai", "anthropic", "gemini"]


class FallbackConfig(_Section):
    provider: Provider
    model: str = Field(min_length=1)
    base_url: HttpUrl | None = None


class LLMConfig(_Section):
    provider: Provider = "echo"
    model: str = Field(default="gpt-4o-mini", min_length=1)
    base_url: HttpUrl | None = None
    timeout_seconds: PositiveFloat = 60.0
    max_retries: int = Field(default=2, ge=0, le=10)
    # Also what a budget holds for a call's answer until it ends (spend.budgets).
    max_tokens: PositiveInt = Field(default=4096, le=1_000_000)
    # They share timeout_seconds, max_retries and max_tokens.
    fallbacks: tuple[FallbackConfig, ...] = Field(default=(), max_length=5)
    system_prompt: str = "You are a helpful assistant."
    history_limit: PositiveInt = 50
    max_file_chars: PositiveInt = 20_000

    @property
    def chain(self) -> tuple[FallbackConfig, ...]:
        """Every model a call may reach, in the order it tries them."""
        first = FallbackConfig(provider=self.provider, model=self.model, base_url=self.base_url)
        return (first, *self.fallbacks)


class AgentConfig(_Section):
    max_steps: PositiveInt = Field(default=8, le=100)
    tool_timeout_seconds: PositiveFloat = 10.0
    max_tool_result_chars: PositiveInt = 20_000
    http_allowed_hosts: frozenset[str] = frozenset()
    http_max_bytes: PositiveInt = 100_000
    mcp_servers: McpServers = ()
    mcp_refresh_seconds: PositiveFloat = 60.0
    mcp_max_response_bytes: PositiveInt = 1024 * 1024
    max_streams: PositiveInt = Field(default=100, le=10_000)
    max_streams_per_key: PositiveInt = Field(default=8, le=1000)
    # Built-in names are checked at start-up (app.agent.registry): a misspelt one would
    # leave a dangerous tool ungated.
    require_approval: frozenset[str] = frozenset()


class WorkerConfig(_Section):
    concurrency: PositiveInt = Field(default=100, le=10_000)
    visibility_timeout_seconds: PositiveFloat = 60.0
    max_attempts: PositiveInt = Field(default=3, le=20)
    sweep_seconds: PositiveFloat = 5.0
    events_poll_seconds: PositiveFloat = 0.5
    events_stream_seconds: PositiveFloat = 300.0
    max_event_streams: PositiveInt = Field(default=100, le=10_000)
    max_event_streams_per_key: PositiveInt = Field(default=4, le=1000)


class OpenAIApiConfig(_Section):
    model_name: str = Field(default="agent", min_length=1, max_length=200)
    max_messages: PositiveInt = Field(default=100, le=10_000)


class McpServerConfig(_Section):
    enabled: bool = True
    # Stateless by default: a session lives in one process's memory, so behind several api
    # processes (the replicas of a deployment) a client's next request could reach one that
    # never saw its session; these tools need none.
    stateless: bool = True
    # Stateful only: sessions held at once (each a task and its buffers), and how long one
    # may sit idle before it is closed.
    max_sessions: PositiveInt = Field(default=1000, le=100_000)
    session_idle_seconds: PositiveFloat = Field(default=1800.0, le=86_400)


class A2AConfig(_Section):
    enabled: bool = True
    # The agent card's description of the agent; its name and version are the project's.
    description: str = Field(
        default="An AI agent that answers with the help of its tools.",
        min_length=1,
        max_length=2000,
    )
    # Where clients reach the api, as the card advertises it (behind a proxy: its public URL);
    # unset: the scheme, host and port the card was fetched with.
    public_url: HttpUrl | None = None


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
    # JSON bodies are read into memory whole; the longest valid message fits, even with
    # every character escaped as a surrogate pair (12 bytes).
    max_json_bytes: PositiveInt = 512 * 1024
    max_bodies_in_flight: PositiveInt = 64
    # A request finding every body slot taken waits in line (config.yaml says why); 0 refuses
    # at once. Bounded both ways: a waiting request holds its connection and unread body.
    max_waiting: int = Field(default=1024, ge=0, le=100_000)
    max_wait_seconds: float = Field(default=1.0, ge=0, le=10)
    body_timeout_seconds: PositiveFloat = 60.0


class RateLimitConfig(_Section):
    requests: PositiveInt = 60
    window_seconds: PositiveInt = 60


class RedisConfig(_Section):
    timeout_seconds: PositiveFloat = 1.0


class HealthConfig(_Section):
    timeout_seconds: PositiveFloat = 1.0


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file_max_bytes: PositiveInt = 10 * 1024 * 1024
    file_backup_count: int = Field(default=5, ge=0)


class PlaygroundConfig(_Section):
    # auto: on in development only, as a page that takes keys has no place on a production
    # host unless someone decides so (Settings.playground_enabled).
    enabled: Literal["auto"] | bool = "auto"


class MetricsConfig(_Section):
    enabled: bool = True
    # All interfaces, so that Prometheus on the container network reaches it; compose does
    # not publish it. Outside a container, 127.0.0.1 keeps it on the machine.
    worker_host: str = "0.0.0.0"  # noqa: S104
    worker_port: int = Field(default=9101, ge=1, le=65535)


class PriceConfig(_Section):
    """A model's price in US dollars per million tokens."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    # The input price when unset.
    cache_read: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)


class BudgetConfig(_Section):
    """What one key may spend per UTC day and calendar month; unset: no bound."""

    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    usd_per_day: Decimal | None = Field(default=None, ge=0)
    usd_per_month: Decimal | None = Field(default=None, ge=0)

    @property
    def bounded(self) -> bool:
        return bool(self.model_dump(exclude_none=True))

    @property
    def in_dollars(self) -> bool:
        return self.usd_per_day is not None or self.usd_per_month is not None


class BudgetsConfig(_Section):
    default: BudgetConfig = BudgetConfig()
    keys: dict[str, BudgetConfig] = {}

    def of(self, owner: str) -> BudgetConfig:
        """The owner's budget: the bounds its key's entry sets, the default's for the others."""
        named = self.keys.get(owner)
        if named is None:
            return self.default
        return self.default.model_copy(update=named.model_dump(exclude_unset=True))

    @property
    def every(self) -> tuple[BudgetConfig, ...]:
        return (self.default, *self.keys.values())


class SpendConfig(_Section):
    # By "provider:model", over genai-prices' table.
    prices: dict[str, PriceConfig] = {}
    budgets: BudgetsConfig = BudgetsConfig()
    # Longer than any model call (llm.timeout_seconds per read, a long stream more).
    hold_seconds: PositiveFloat = Field(default=900.0, le=86_400)

    @property
    def budgeted(self) -> bool:
        """Whether any key has a budget (without one, model calls take no holds)."""
        return any(b.bounded for b in self.budgets.every)

    @property
    def in_dollars(self) -> bool:
        """Whether any budget is in dollars: then every model in the chain needs a price."""
        return any(b.in_dollars for b in self.budgets.every)

    @field_validator("prices")
    @classmethod
    def _provider_and_model(cls, prices: dict[str, PriceConfig]) -> dict[str, PriceConfig]:
        for key in prices:
            provider, _, model = key.partition(":")
            if provider not in get_args(Provider) or not model:
                names = ", ".join(get_args(Provider))
                raise ValueError(f"{key!r} is not provider:model (providers: {names})")
        return prices


class AppConfig(_Section):
    llm: LLMConfig = LLMConfig()
    agent: AgentConfig = AgentConfig()
    worker: WorkerConfig = WorkerConfig()
    openai_api: OpenAIApiConfig = OpenAIApiConfig()
    mcp_server: McpServerConfig = McpServerConfig()
    a2a: A2AConfig = A2AConfig()
    uploads: UploadsConfig = UploadsConfig()
    requests: RequestsConfig = RequestsConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    redis: RedisConfig = RedisConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    playground: PlaygroundConfig = PlaygroundConfig()
    spend: SpendConfig = SpendConfig()

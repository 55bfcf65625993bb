"""The sections of config.yaml, each a frozen model that refuses keys it does not know."""

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
    """A provider and model a call moves to when those before it cannot answer now."""

    provider: Provider
    model: str = Field(min_length=1)
    # The provider's own API when unset.
    base_url: HttpUrl | None = None


class LLMConfig(_Section):
    provider: Provider = "echo"
    model: str = Field(default="gpt-4o-mini", min_length=1)
    # The provider's own API when unset.
    base_url: HttpUrl | None = None
    timeout_seconds: PositiveFloat = 60.0
    max_retries: int = Field(default=2, ge=0, le=10)
    # The most tokens one answer may have, sent with every call: what a budget holds for a
    # call's answer until it ends (spend.budgets).
    max_tokens: PositiveInt = Field(default=4096, le=1_000_000)
    # Tried in order when the provider above (or the fallback before) is unreachable, times
    # out, rate-limits or is overloaded; never on a refused key or a rejected request. They
    # share timeout_seconds, max_retries and max_tokens.
    fallbacks: tuple[FallbackConfig, ...] = Field(default=(), max_length=5)
    system_prompt: str = "You are a helpful assistant."
    history_limit: PositiveInt = 50
    max_file_chars: PositiveInt = 20_000

    @property
    def chain(self) -> tuple[FallbackConfig, ...]:
        """Every model a call may reach, in the order it tries them: the provider, then
        each fallback."""
        first = FallbackConfig(provider=self.provider, model=self.model, base_url=self.base_url)
        return (first, *self.fallbacks)


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
    # the call needs a background run. Built-in names (a misspelt one stops start-up, as it
    # would leave a dangerous tool ungated), or "server.tool" for MCP tools.
    require_approval: frozenset[str] = frozenset()


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


class PriceConfig(_Section):
    """A model's price in US dollars per million tokens."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    # Tokens read from and written to the prompt cache: the input price when unset.
    cache_read: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)


class BudgetConfig(_Section):
    """What one key may spend on model calls per UTC day and calendar month; unset: no bound.

    Tokens count every input and output token; dollars are the ledger's cost.
    """

    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    usd_per_day: Decimal | None = Field(default=None, ge=0)
    usd_per_month: Decimal | None = Field(default=None, ge=0)

    def over(self, default: "BudgetConfig") -> "BudgetConfig":
        """This key's budget: the bounds it sets, the default's for the others."""
        own = {name: getattr(self, name) for name in self.model_fields_set}
        return default.model_copy(update=own)

    @property
    def bounded(self) -> bool:
        """Whether it sets any bound."""
        return bool(self.model_dump(exclude_none=True))

    @property
    def in_dollars(self) -> bool:
        return self.usd_per_day is not None or self.usd_per_month is not None


class BudgetsConfig(_Section):
    # Every key's, unless keys names it (by the key's name, as in API_KEYS name:value).
    default: BudgetConfig = BudgetConfig()
    keys: dict[str, BudgetConfig] = {}

    def of(self, owner: str) -> BudgetConfig:
        """The owner's budget: its key's bounds over the default's."""
        named = self.keys.get(owner)
        return named.over(self.default) if named is not None else self.default

    @property
    def every(self) -> tuple[BudgetConfig, ...]:
        return (self.default, *self.keys.values())


class SpendConfig(_Section):
    """What model calls cost (the ledger, GET /v1/usage) and what each key may spend."""

    # By "provider:model", for a model the price table (genai-prices) does not know or one
    # you pay differently for (a self-hosted model: 0).
    prices: dict[str, PriceConfig] = {}
    budgets: BudgetsConfig = BudgetsConfig()
    # How long a model call's hold on a budget lasts if its process dies before the call
    # ends; longer than any model call (llm.timeout_seconds per read, a long stream more).
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
    spend: SpendConfig = SpendConfig()

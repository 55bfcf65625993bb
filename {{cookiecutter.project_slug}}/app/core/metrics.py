"""Prometheus metrics: what the api and the worker count, and what a scrape of them reads.

Each process builds one Metrics (the api in create_app, the worker in serve) and hands it to
what counts. No metric is global: every app built in a process (tests build many) counts in
a registry of its own.

With PROMETHEUS_MULTIPROC_DIR set (several server processes: `python -m app --workers N`),
prometheus_client keeps every value in a file of that directory, and a scrape, whichever
process answers it, adds up the files of all of them. The directory must be empty when the
service starts: a tmpfs, or emptied by whatever starts the processes.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal, get_args

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from sqlalchemy import event
from sqlalchemy.pool import Pool, QueuePool

# Model calls take seconds, tool calls milliseconds to seconds, requests either.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
AdmissionReason = Literal[
    "too_large",
    "body_timeout",
    "bodies_in_flight",
    "uploads_in_flight",
    "key_uploads_in_flight",
    "event_streams",
    "key_event_streams",
    "turn_streams",
    "key_turn_streams",
]
RedisOperation = Literal["rate_limit", "enqueue", "health", "sweep"]
Outcome = Literal["ok", "error", "cancelled"]
# The tokens of a model call, by kind: cache_read and cache_write count the part of the
# prompt served from, and written to, the provider's prompt cache.
TokenKind = Literal["prompt", "completion", "cache_read", "cache_write"]
# denied: a person refused the call; needs_approval: nobody could be asked (an interactive
# turn), so it did not run.
ToolOutcome = Literal[
    "ok", "error", "timeout", "bad_arguments", "unknown_tool", "denied", "needs_approval"
]


class Metrics:
    """Every metric of one process, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess = bool(directory)
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
        else:
            # Memory, CPU, open files, GC: meaningful per process, so left out of the sums
            # of multi-process mode.
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        counter = partial(Counter, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        self.http_requests = counter(
            "http_requests",
            "HTTP requests by route template, method and status.",
            ("handler", "method", "status"),
        )
        self.http_duration = histogram(
            "http_request_duration_seconds",
            "HTTP requests' duration, by route template and method.",
            ("handler", "method"),
            buckets=HTTP_BUCKETS,
        )
        self.http_in_progress = gauge(
            "http_requests_inprogress", "HTTP requests being served.", multiprocess_mode="livesum"
        )
        self.redis_errors = counter(
            "redis_errors", "Redis commands that failed or timed out, by operation.", ("operation",)
        )
        self.rate_limit_rejections = counter(
            "rate_limit_rejections", "Requests refused with 429 over their key's rate limit."
        )
        self.admission_rejections = counter(
            "admission_rejections",
            "Request bodies refused before their route ran (413, 408, or 503/429 when busy).",
            ("reason",),
        )
        self.admission_waiting = gauge(
            "admission_waiting",
            "Requests waiting for a body slot before their route ran (requests.max_waiting).",
            multiprocess_mode="livesum",
        )
        self.llm_calls = counter(
            "llm_calls", "Model calls by provider, model and outcome.", (*_MODEL, "outcome")
        )
        self.llm_duration = histogram(
            "llm_call_duration_seconds",
            "Model calls' duration (a streamed one's until its last piece).",
            _MODEL,
            buckets=LLM_BUCKETS,
        )
        self.llm_tokens = counter(
            "llm_tokens",
            "Tokens the provider reported, by kind (cache_read and cache_write: of the prompt).",
            (*_MODEL, "kind"),
        )
        self.llm_cost = counter(
            "llm_cost_usd", "What answered model calls cost, in US dollars.", _MODEL
        )
        self.budget_refusals = counter(
            "budget_refusals", "Model calls refused before they were made, by budget.", ("budget",)
        )
        self.tool_calls = counter(
            "agent_tool_calls", "Tool calls by tool and outcome.", ("tool", "outcome")
        )
        self.tool_duration = histogram(
            "agent_tool_call_duration_seconds",
            "Tool calls' duration.",
            ("tool",),
            buckets=TOOL_BUCKETS,
        )
        # Set by the worker's sweep from PostgreSQL and Redis: every worker reports the same
        # numbers, so aggregate them with max, not sum.
        self.runs = gauge(
            "agent_runs",
            "Runs by state, at the last sweep.",
            ("state",),
            multiprocess_mode="mostrecent",
        )
        self.queue_depth = gauge(
            "agent_run_queue_depth",
            "Run messages waiting in Redis, at the last sweep.",
            multiprocess_mode="mostrecent",
        )
        # Series that exist from the start: a rate() over a counter that appears only with
        # its first increment misses that increment.
        for reason in get_args(AdmissionReason):
            self.admission_rejections.labels(reason)
        for operation in get_args(RedisOperation):
            self.redis_errors.labels(operation)

    def model_call(
        self,
        provider: str,
        model: str,
        outcome: Outcome,
        seconds: float,
        tokens: Mapping[TokenKind, int] | None = None,
    ) -> None:
        self.llm_calls.labels(provider, model, outcome).inc()
        self.llm_duration.labels(provider, model).observe(seconds)
        for kind in get_args(TokenKind):
            self.llm_tokens.labels(provider, model, kind).inc((tokens or {}).get(kind, 0))

    def tool_call(self, tool: str, outcome: ToolOutcome, seconds: float) -> None:
        self.tool_calls.labels(tool, outcome).inc()
        self.tool_duration.labels(tool).observe(seconds)

    def admission_refused(self, reason: AdmissionReason) -> None:
        self.admission_rejections.labels(reason).inc()

    def redis_error(self, operation: RedisOperation) -> None:
        self.redis_errors.labels(operation).inc()

    def run_backlog(self, by_state: Mapping[str, int], queue_depth: int) -> None:
        for state, count in by_state.items():
            self.runs.labels(state).set(count)
        self.queue_depth.set(queue_depth)

    @contextmanager
    def serving(self, pool: Pool, limit: int) -> Iterator[None]:
        """While the process serves, report its database pool: connections in use, limit (on
        exit, in multi-process mode, this process's live gauges leave the sums)."""
        if self.multiprocess:
            try:
                with _pool_counted(pool, limit):
                    yield
            finally:
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            return
        gauges = _pool_gauges(self.registry)
        # Read when scraped: nothing is counted while connections come and go. The async
        # engine's pool is a QueuePool (AsyncAdaptedQueuePool).
        gauges[0].set_function(lambda: pool.checkedout() if isinstance(pool, QueuePool) else 0)
        gauges[1].set(limit)
        try:
            yield
        finally:
            for gauge in gauges:
                self.registry.unregister(gauge)

    def exposition(self) -> bytes:
        """The text a scrape receives (Prometheus' text format)."""
        return generate_latest(self._scraped())

    @contextmanager
    def served_at(self, host: str, port: int) -> Iterator[None]:
        """Serve the metrics at http://host:port/metrics from a thread, while inside."""
        server, thread = start_http_server(port, host, registry=self._scraped())
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    def _scraped(self) -> CollectorRegistry:
        if not self.multiprocess:
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry


_MODEL = ("provider", "model")


def _pool_gauges(registry: CollectorRegistry | None) -> tuple[Gauge, Gauge]:
    gauge = partial(Gauge, registry=registry, multiprocess_mode="livesum")
    return (
        gauge("db_pool_connections_in_use", "Database connections checked out of the pool."),
        gauge(
            "db_pool_connections_max",
            "The most connections the pool opens (pool size plus overflow).",
        ),
    )


@contextmanager
def _pool_counted(
    pool: Pool, limit: int, registry: CollectorRegistry | None = None
) -> Iterator[None]:
    """Multi-process mode: a scrape cannot read the other processes' pools, so each process
    counts its connections as they come and go, and the scrape adds them up. In no registry
    by default: the scrape reads the files, and a second app of the process must not collide."""
    in_use, maximum = _pool_gauges(registry)
    maximum.set(limit)

    def taken(*_: Any) -> None:
        in_use.inc()

    def returned(*_: Any) -> None:
        in_use.dec()

    event.listen(pool, "checkout", taken)
    event.listen(pool, "checkin", returned)
    try:
        yield
    finally:
        event.remove(pool, "checkout", taken)
        event.remove(pool, "checkin", returned)

"""What a tool is, and the registry that offers tools to the model and runs its calls.

A built-in tool is an async function of a pydantic model of its arguments (the schema) and
the turn's context, its docstring what the model is told; an MCP server's tool has the
server's schema, and the server checks its arguments. Both run alike: timeout, cap, metrics."""

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from app.config.sections import AgentConfig
from app.core.metrics import Metrics, ToolOutcome
from app.llm.base import ToolCall, ToolSpec

logger = logging.getLogger(__name__)


class ToolError(Exception):
    """A tool cannot do what it was asked; the message goes back to the model."""


class McpError(ToolError):
    """An MCP server failed; `reason` says how ("cannot be reached", "answered HTTP 401")."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"MCP server {server} {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may reach: the caller's rows only, through the owner and conversation."""

    owner: str
    # None for a turn over messages a request carries (the OpenAI-compatible endpoint).
    conversation_id: uuid.UUID | None
    config: AgentConfig
    # The text of a file attached to this conversation (ToolError for any other id).
    read_attached: Callable[[uuid.UUID], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool[A]:
    """What the model is told of a tool, and how a call of it runs with `parse`d arguments."""

    spec: ToolSpec
    run: Callable[[A, ToolContext], Awaitable[str]]
    # From the call's JSON to run's arguments; ValueError (ValidationError) when they do not fit.
    parse: Callable[[Any], A]

    @property
    def name(self) -> str:
        return self.spec.name


def tool[A: BaseModel](function: Callable[[A, ToolContext], Awaitable[str]]) -> Tool[A]:
    """Make a tool of `async def name(args: SomeModel, context: ToolContext) -> str`."""
    first = next(iter(inspect.signature(function).parameters))
    arguments: type[A] = get_type_hints(function)[first]
    description = inspect.getdoc(function) or function.__name__
    # The schema is built once: generating it is costly, and every model call sends it.
    spec = ToolSpec(function.__name__, description, arguments.model_json_schema())
    return Tool(spec, function, arguments.model_validate)


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str
    is_error: bool = False


class Registry:
    """The tools of one turn, by name; every call is counted by tool and outcome."""

    def __init__(
        self,
        tools: Iterable[Tool[Any]],
        config: AgentConfig,
        metrics: Metrics,
        unavailable: Mapping[str, str],
    ) -> None:
        self._tools = {t.spec.name: t for t in tools}
        self._config = config
        self._metrics = metrics
        # MCP servers that cannot be reached now, with why: a call of "server.tool" says so.
        self._unavailable = unavailable

    @property
    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    async def call(self, call: ToolCall, context: ToolContext) -> ToolResult:
        """Run one call; every failure becomes a result the model can read, never an error."""
        started = time.perf_counter()
        outcome, result = await self._run(call, context)
        # A name the model made up is counted as "unknown": each would be a new series.
        tool = call.name if call.name in self._tools else "unknown"
        self._metrics.tool_call(tool, outcome, time.perf_counter() - started)
        return result

    def refuse(self, call: ToolCall, outcome: ToolOutcome, reason: str) -> ToolResult:
        """The result of a call that was not run (a person's decision), counted as outcome."""
        tool = call.name if call.name in self._tools else "unknown"
        self._metrics.tool_call(tool, outcome, 0.0)
        return ToolResult(f"error: {call.name}: {reason}", True)

    async def _run(self, call: ToolCall, context: ToolContext) -> tuple[ToolOutcome, ToolResult]:
        chosen = self._tools.get(call.name)
        if chosen is None:
            server, dot, _ = call.name.partition(".")
            if dot and server in self._unavailable:
                detail = f"error: MCP server {server} is unavailable ({self._unavailable[server]})"
                return "error", ToolResult(detail, True)
            return "unknown_tool", ToolResult(f"error: no tool named {call.name!r}", True)
        try:
            arguments = chosen.parse(json.loads(call.arguments or "{}"))
        except ValueError as exc:  # pydantic's ValidationError is one
            detail = f"error: bad arguments for {call.name}: {_brief(exc)}"
            return "bad_arguments", ToolResult(detail, True)
        timeout = self._config.tool_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                content = await chosen.run(arguments, context)
        except TimeoutError:
            detail = f"error: {call.name} timed out after {timeout:g} s"
            return "timeout", ToolResult(detail, True)
        except ToolError as exc:
            return "error", ToolResult(f"error: {exc}", True)
        except Exception as exc:
            # A tool's bug must not end the turn; the log keeps the traceback.
            logger.exception("tool %s failed", call.name)
            detail = f"error: {call.name} failed ({type(exc).__name__})"
            return "error", ToolResult(detail, True)
        return "ok", ToolResult(content[: self._config.max_tool_result_chars])


def _brief(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
            for error in exc.errors()
        )
    return f"not a JSON object ({exc})"

"""One MCP server over streamable HTTP, through the official SDK's client (`mcp`).

Each call and each listing is a short session of its own over the process's pool: a session
kept open would save a handshake (far shorter than a model call) but need mending whenever
its server restarts. A session fails past agent.mcp_max_response_bytes read, so a huge result
is refused before it is in memory, not cut after."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import (
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    TextContent,
    TextResourceContents,
)
from mcp.types import Tool as McpTool

from app.agent.tools import McpError, Tool, ToolContext, ToolError
from app.config.mcp import TOOL_NAME, McpServerConfig
from app.config.sections import AgentConfig
from app.llm.base import ToolSpec

# Bounds on what one listing may offer the model: every spec goes with every model call.
MAX_PAGES = 10
MAX_TOOLS = 128
MAX_DESCRIPTION_CHARS = 2000


class _TooLargeError(Exception):
    pass


class _CountingTransport(httpx2.AsyncBaseTransport):
    """The process's pool, seen by one session: what its responses bring counts against limit."""

    def __init__(self, pool: httpx2.AsyncBaseTransport, limit: int) -> None:
        self._pool = pool
        self.limit = limit
        self.read = 0
        # The last, not the first: in mode "auto" the SDK first probes for the newest protocol,
        # which an older server may refuse with a 4xx before the handshake it does speak.
        self.status: int | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._pool.handle_async_request(request)
        self.status = response.status_code
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        return None  # the pool outlives the session; its owner (open_mcp_tools) closes it


class _CountedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, counter: _CountingTransport) -> None:
        self._stream = stream
        self._counter = counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._counter.read += len(chunk)
            if self._counter.read > self._counter.limit:
                raise _TooLargeError
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class HttpMcpServer:
    """A configured server: lists its allowed tools, and calls them."""

    def __init__(
        self, config: McpServerConfig, pool: httpx2.AsyncBaseTransport, agent: AgentConfig
    ) -> None:
        self.name = config.name
        self._config = config
        self._pool = pool
        self._timeout = agent.tool_timeout_seconds
        self._max_bytes = agent.mcp_max_response_bytes

    async def list_tools(self) -> tuple[Tool[dict[str, Any]], ...]:
        listed = await self._session(_all_tools)
        allowed = (t for t in listed if self._config.allows(t.name) and TOOL_NAME.fullmatch(t.name))
        return tuple(self._tool(t) for t in allowed)

    def _tool(self, tool: McpTool) -> Tool[dict[str, Any]]:
        description = (tool.description or tool.title or tool.name)[:MAX_DESCRIPTION_CHARS]
        spec = ToolSpec(f"{self.name}.{tool.name}", description, tool.input_schema)

        async def run(arguments: dict[str, Any], context: ToolContext) -> str:
            result = await self._session(lambda c: c.call_tool(tool.name, arguments))
            if result.is_error:
                raise ToolError(f"{self.name}.{tool.name} failed: {_text(result)}")
            return _text(result)

        return Tool(spec, run, _json_object)

    async def _session[T](self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Do work in a session of its own; any failure is an McpError saying what went wrong."""
        headers = {}
        if self._config.token is not None:
            headers["Authorization"] = f"Bearer {self._config.token.get_secret_value()}"
        transport = _CountingTransport(self._pool, self._max_bytes)
        try:
            # trust_env off: with HTTP(S)_PROXY set, each client would build proxy transports of
            # its own around the shared pool; MCP servers are reached directly.
            async with httpx2.AsyncClient(
                transport=transport, headers=headers, timeout=self._timeout, trust_env=False
            ) as http:
                streams = streamable_http_client(
                    str(self._config.url), http_client=http, max_sse_event_size=self._max_bytes
                )
                # No response cache: every session is new, and a listing is fetched on purpose.
                async with Client(streams, cache=None) as client:
                    return await work(client)
        except Exception as exc:
            raise McpError(self.name, _reason(exc, transport)) from None


def _json_object(arguments: Any) -> dict[str, Any]:
    # The server checks the arguments against its schema; an object is all we ask of them.
    if not isinstance(arguments, dict):
        raise ValueError(f"a JSON {type(arguments).__name__}")
    return arguments


async def _all_tools(client: Client) -> list[McpTool]:
    tools: list[McpTool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None or len(tools) >= MAX_TOOLS:
            break
    return tools[:MAX_TOOLS]


def _text(result: CallToolResult) -> str:
    parts = [_block(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


def _block(block: ContentBlock) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.resource.text
    return f"[{block.type} content, not shown]"


def _reason(exc: BaseException, session: _CountingTransport) -> str:
    """What went wrong, in words safe for the model and the logs (no token, no body)."""
    if session.read > session.limit:
        return f"answered more than {session.limit} bytes"
    if session.status is not None and session.status >= 400:
        return f"answered HTTP {session.status}"
    leaves = _leaves(exc)
    if any(isinstance(e, httpx2.ConnectError | httpx2.ConnectTimeout) for e in leaves):
        return "cannot be reached"
    if errors := [e for e in leaves if isinstance(e, MCPError)]:
        return f"answered an error: {errors[0].error.message[:200]}"
    return f"failed ({', '.join(sorted({type(e).__name__ for e in leaves}))})"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]

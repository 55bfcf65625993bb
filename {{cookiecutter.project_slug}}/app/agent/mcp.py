"""The tools of MCP servers (config.yaml agent.mcp_servers), kept listed for every turn.

Each process lists every server's tools at start and again every agent.mcp_refresh_seconds
in the background; a turn takes the last listing and does no I/O for it. Listing per turn
would cost each turn a round trip to every server (about 6 ms on the loopback, more across
a network) and, with a server down, the wait for its timeout. A server that cannot be
listed offers no tools until a later listing succeeds; a call of one of its tools then
answers the model that the server is unavailable.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Protocol

from app.agent.tools import SchemaTool, ToolError
from app.core.config import AgentConfig

logger = logging.getLogger(__name__)


class McpError(ToolError):
    """An MCP server failed; `reason` says how ("cannot be reached", "answered HTTP 401")."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"MCP server {server} {reason}")
        self.reason = reason


class McpServer(Protocol):
    name: str

    async def list_tools(self) -> tuple[SchemaTool, ...]:
        """The server's allowed tools, named "server.tool"; McpError when it fails."""
        ...


@dataclass(frozen=True, slots=True)
class McpListing:
    tools: tuple[SchemaTool, ...] = ()
    # The servers that could not be listed, and why.
    unavailable: Mapping[str, str] = field(default_factory=dict)


class McpTools:
    """Every configured server's allowed tools as last listed; the lifespan owns it."""

    def __init__(self, servers: Sequence[McpServer], config: AgentConfig) -> None:
        self._servers = servers
        self._timeout = config.tool_timeout_seconds
        self._refresh_seconds = config.mcp_refresh_seconds
        self.listing = McpListing()

    async def refresh(self) -> None:
        """List every server at once; each gets agent.tool_timeout_seconds."""
        found = await asyncio.gather(*(self._list(server) for server in self._servers))
        tools = tuple(tool for result in found if not isinstance(result, str) for tool in result)
        unavailable = {
            server.name: result
            for server, result in zip(self._servers, found, strict=True)
            if isinstance(result, str)
        }
        self._report(unavailable)
        self.listing = McpListing(tools, unavailable)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                # A bug here must not end the refreshing for the life of the process.
                logger.exception("listing the MCP servers' tools failed")

    async def _list(self, server: McpServer) -> tuple[SchemaTool, ...] | str:
        try:
            async with asyncio.timeout(self._timeout):
                return await server.list_tools()
        except TimeoutError:
            return f"did not list its tools within {self._timeout:g} s"
        except McpError as exc:
            return exc.reason

    def _report(self, unavailable: Mapping[str, str]) -> None:
        # Once per change, not once per refresh: a server down for a day is one warning.
        before = self.listing.unavailable
        for name, reason in unavailable.items():
            if before.get(name) != reason:
                logger.warning("MCP server %s %s: its tools are not offered", name, reason)
        for name in before.keys() - unavailable.keys():
            logger.info("MCP server %s is listed again", name)


@asynccontextmanager
async def open_mcp_tools(config: AgentConfig) -> AsyncIterator[McpTools]:
    """List the configured servers' tools, keep them fresh, and stop on exit."""
    if not config.mcp_servers:
        yield McpTools((), config)
        return
    # Imported only when a server is configured: the SDK costs a process about 16 MB and
    # most of a second of imports.
    from app.agent import mcp_client

    async with mcp_client.connection_pool() as pool:
        servers = [mcp_client.HttpMcpServer(s, pool, config) for s in config.mcp_servers]
        tools = McpTools(servers, config)
        await tools.refresh()
        refresher = asyncio.create_task(tools.refresh_forever())
        try:
            yield tools
        finally:
            refresher.cancel()
            with suppress(asyncio.CancelledError):
                await refresher

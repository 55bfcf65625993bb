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

from app.agent.mcp_errors import McpError
from app.agent.tools import SchemaTool
from app.config.mcp import EVERY_TOOL
from app.config.sections import AgentConfig

logger = logging.getLogger(__name__)


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
        self._allowlists = {server.name: server.tools for server in config.mcp_servers}
        # The tool names each server offered at the last listing, to log only changes.
        self._offered: dict[str, frozenset[str]] = {}
        self.listing = McpListing()

    async def refresh(self) -> None:
        """List every server at once; each gets agent.tool_timeout_seconds."""
        found = await asyncio.gather(*(self._list(server) for server in self._servers))
        listed = {s.name: r for s, r in zip(self._servers, found, strict=True)}
        unavailable = {name: r for name, r in listed.items() if isinstance(r, str)}
        offered = {
            name: frozenset(tool.spec.name.removeprefix(f"{name}.") for tool in tools)
            for name, tools in listed.items()
            if not isinstance(tools, str)
        }
        self._report(offered, unavailable)
        tools = tuple(tool for result in found if not isinstance(result, str) for tool in result)
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

    def _report(
        self, offered: Mapping[str, frozenset[str]], unavailable: Mapping[str, str]
    ) -> None:
        # Once per change, not once per refresh: a server down for a day is one warning.
        before = self.listing.unavailable
        for name, reason in unavailable.items():
            if before.get(name) != reason:
                logger.warning("MCP server %s %s: its tools are not offered", name, reason)
        for name, tools in offered.items():
            if self._offered.get(name) != tools:
                logger.info("MCP server %s offers %s", name, ", ".join(sorted(tools)) or "no tools")
                # A misspelt allowlist entry would otherwise hide a tool without a word.
                if missing := sorted(
                    self._allowlists.get(name, frozenset()) - tools - {EVERY_TOOL}
                ):
                    logger.warning("MCP server %s lists no tool %s", name, ", ".join(missing))
        self._offered = dict(offered)


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

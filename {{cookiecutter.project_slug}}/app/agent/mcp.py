"""The tools of MCP servers (config.yaml agent.mcp_servers), kept listed for every turn.

Each process lists every server's tools at start and every agent.mcp_refresh_seconds in the
background; a turn takes the last listing, with no I/O (listing per turn would cost a round
trip to every server, and a down server's timeout). A server that cannot be listed offers no
tools until it can; a call of one of its tools tells the model the server is unavailable."""

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.agent.tools import McpError, Tool
from app.config.mcp import EVERY_TOOL
from app.config.sections import AgentConfig

if TYPE_CHECKING:  # at run time, imported only when a server is configured (see below)
    from app.agent.mcp_client import HttpMcpServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class McpListing:
    tools: tuple[Tool[dict[str, Any]], ...] = ()
    # The servers that could not be listed, and why.
    unavailable: Mapping[str, str] = field(default_factory=dict)


class McpTools:
    """Every configured server's allowed tools as last listed; the lifespan owns it."""

    def __init__(self, servers: Sequence["HttpMcpServer"], config: AgentConfig) -> None:
        self._servers = servers
        self._timeout = config.tool_timeout_seconds
        self._refresh_seconds = config.mcp_refresh_seconds
        self._allowlists = {server.name: server.tools for server in config.mcp_servers}
        # The tool names each server offered at its last listing, to log only changes.
        self._offered: dict[str, frozenset[str]] = {}
        self.listing = McpListing()

    async def refresh(self) -> None:
        """List every server at once, each within agent.tool_timeout_seconds. What changed is
        logged once, not at every refresh: a server down for a day is one warning."""
        found = await asyncio.gather(*(self._list(server) for server in self._servers))
        tools: list[Tool[dict[str, Any]]] = []
        unavailable: dict[str, str] = {}
        for name, result in zip((s.name for s in self._servers), found, strict=True):
            if isinstance(result, str):
                unavailable[name] = result
                self._offered.pop(name, None)
                if self.listing.unavailable.get(name) != result:
                    logger.warning("MCP server %s %s: its tools are not offered", name, result)
                continue
            tools += result
            offered = frozenset(tool.name.removeprefix(f"{name}.") for tool in result)
            if self._offered.get(name) != offered:
                self._offered[name] = offered
                logger.info(
                    "MCP server %s offers %s", name, ", ".join(sorted(offered)) or "no tools"
                )
                # A misspelt allowlist entry would otherwise hide a tool without a word.
                allowed = self._allowlists.get(name, frozenset())
                if missing := sorted(allowed - offered - {EVERY_TOOL}):
                    logger.warning("MCP server %s lists no tool %s", name, ", ".join(missing))
        self.listing = McpListing(tuple(tools), unavailable)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                # A bug here must not end the refreshing for the life of the process.
                logger.exception("listing the MCP servers' tools failed")

    async def _list(self, server: "HttpMcpServer") -> tuple[Tool[dict[str, Any]], ...] | str:
        try:
            async with asyncio.timeout(self._timeout):
                return await server.list_tools()
        except TimeoutError:
            return f"did not list its tools within {self._timeout:g} s"
        except McpError as exc:
            return exc.reason


@asynccontextmanager
async def open_mcp_tools(config: AgentConfig) -> AsyncIterator[McpTools]:
    """List the configured servers' tools, keep them fresh, and stop on exit."""
    if not config.mcp_servers:
        yield McpTools((), config)
        return
    # Imported only when a server is configured: the SDK is heavy to import and to hold.
    import httpx2

    from app.agent import mcp_client

    async with httpx2.AsyncHTTPTransport() as pool:
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

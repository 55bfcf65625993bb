"""The tools offered to the model. To add one, write it (see builtin.py), list it here and
its name in app/core/sections.py (BUILTIN_TOOL_NAMES); tools of MCP servers come from
config.yaml (agent.mcp_servers, see mcp.py)."""

from typing import Any

from app.agent.builtin import current_time, http_get, read_file
from app.agent.mcp import McpListing
from app.agent.tools import Registry, Tool
from app.core.config import AgentConfig
from app.core.metrics import Metrics
from app.core.sections import BUILTIN_TOOL_NAMES

TOOLS: list[Tool[Any]] = [
    current_time,
    read_file,
    http_get,
]
# config.yaml's agent.require_approval is checked against core's list of these names (core
# imports nothing of the agent): a tool missing there could not be gated, so start-up stops.
if {t.name for t in TOOLS} != BUILTIN_TOOL_NAMES:
    raise RuntimeError(
        "the tools listed in TOOLS and BUILTIN_TOOL_NAMES (app.core.sections) differ"
    )


def registry_for(config: AgentConfig, metrics: Metrics, mcp: McpListing | None = None) -> Registry:
    """The tools this configuration allows: http_get only when hosts are listed for it,
    and the MCP servers' tools as last listed."""
    mcp = mcp or McpListing()
    offered = [t for t in TOOLS if t is not http_get or config.http_allowed_hosts]
    return Registry([*offered, *mcp.tools], config, metrics, unavailable=mcp.unavailable)

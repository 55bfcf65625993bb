"""The tools offered to the model. To add one, write it (see builtin.py) and list it here;
tools of MCP servers come from config.yaml (agent.mcp_servers, see mcp.py)."""

from typing import Any

from app.agent.builtin import current_time, http_get, read_file
from app.agent.mcp import McpListing
from app.agent.tools import Registry, Tool
from app.config.errors import ConfigError
from app.config.sections import AgentConfig
from app.core.metrics import Metrics

TOOLS: list[Tool[Any]] = [
    current_time,
    read_file,
    http_get,
]


def registry_for(config: AgentConfig, metrics: Metrics, mcp: McpListing | None = None) -> Registry:
    """The tools allowed: http_get only with hosts listed for it, MCP tools as last listed."""
    mcp = mcp or McpListing()
    offered = [t for t in TOOLS if t is not http_get or config.http_allowed_hosts]
    return Registry([*offered, *mcp.tools], config, metrics, mcp.unavailable)


def check_approvals(config: AgentConfig) -> None:
    """Stop start-up (ConfigError) when agent.require_approval names a built-in tool that
    does not exist: the tool meant would run ungated."""
    names = {t.name for t in TOOLS}
    if unknown := sorted(n for n in config.require_approval if "." not in n and n not in names):
        raise ConfigError(
            f"config.yaml: agent.require_approval: no built-in tool named {', '.join(unknown)} "
            "(MCP tools: server.tool)"
        )

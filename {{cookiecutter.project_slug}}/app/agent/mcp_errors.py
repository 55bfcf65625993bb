"""The error of a failing MCP server, apart from its client so that the client (loaded only
when a server is configured) and the tool listing each import it without importing the other."""

from app.agent.tools import ToolError


class McpError(ToolError):
    """An MCP server failed; `reason` says how ("cannot be reached", "answered HTTP 401")."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"MCP server {server} {reason}")
        self.reason = reason

"""The MCP server's tools, as MCP clients list them: their names, descriptions (the
docstrings) and input schemas (the signatures)."""

import uuid
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from app.api.mcp_server import calls
from app.api.mcp_server.calls import Answer, Caller, RunState

# The key under request.state where the route leaves the caller it authorized.
CALLER = "mcp_caller"

Message = Annotated[str, Field(description="The user's message to the agent")]
RunId = Annotated[uuid.UUID, Field(description="A run's id, as start_run returned it")]


def caller_of(ctx: Context) -> Caller:
    """The caller the /mcp route authorized for the HTTP request this call came in."""
    request: Any = ctx.request_context.request
    return cast(Caller, getattr(request.state, CALLER))


def build(name: str, version: str) -> MCPServer:
    server: MCPServer = MCPServer(name, version=version, log_level="WARNING")

    @server.tool()
    async def ask(message: Message, ctx: Context) -> Annotated[CallToolResult, Answer]:
        """Ask the agent: one turn on a new conversation, which may call the agent's tools;
        returns its answer. Tool calls that need approval do not run here: use start_run."""
        answer = await calls.ask(caller_of(ctx), message)
        return CallToolResult(
            content=[TextContent(type="text", text=answer.answer)],
            structured_content=answer.model_dump(mode="json"),
        )

    @server.tool()
    async def start_run(message: Message, ctx: Context) -> RunState:
        """Start a background run of the agent on a new conversation; returns its id and
        status at once. Follow it with get_run."""
        return await calls.start_run(caller_of(ctx), message)

    @server.tool()
    async def get_run(run_id: RunId, ctx: Context) -> RunState:
        """A run's status and stop reason, its answer once it has succeeded, and the tool
        calls it waits on (status awaiting_approval) for approve."""
        return await calls.get_run(caller_of(ctx), run_id)

    @server.tool()
    async def approve(
        run_id: RunId,
        tool_call_id: Annotated[str, Field(description="A call listed in pending_approvals")],
        approved: Annotated[bool, Field(description="true runs the call; false denies it")],
        ctx: Context,
    ) -> RunState:
        """Approve or deny a tool call a run waits on; once none waits, the run goes on."""
        return await calls.approve(caller_of(ctx), run_id, tool_call_id, approved)

    return server

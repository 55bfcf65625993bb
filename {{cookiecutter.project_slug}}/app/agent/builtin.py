"""The tools every project starts with; each is safe by default."""

import uuid
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.agent.tools import ToolContext, ToolError, tool


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileArguments(NoArguments):
    file_id: uuid.UUID = Field(description="The id of a file attached to this conversation")


class UrlArguments(NoArguments):
    url: HttpUrl = Field(description="An http(s) URL on one of the allowed hosts")


@tool
async def current_time(args: NoArguments, context: ToolContext) -> str:
    """The current date and time in UTC, in ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@tool
async def read_file(args: FileArguments, context: ToolContext) -> str:
    """Read a text file attached to a message of this conversation."""
    return await context.read_attached(args.file_id)


@tool
async def http_get(args: UrlArguments, context: ToolContext) -> str:
    """Fetch a URL with HTTP GET and return its status and the start of its body."""
    allowed = context.config.http_allowed_hosts
    host = args.url.host or ""
    if host not in allowed and f"{host}:{args.url.port}" not in allowed:
        raise ToolError(f"host {host} is not in agent.http_allowed_hosts")
    limit = context.config.http_max_bytes
    # No redirects: a redirect could lead to a host that is not allowed.
    async with (
        httpx.AsyncClient(
            follow_redirects=False, timeout=context.config.tool_timeout_seconds
        ) as client,
        client.stream("GET", str(args.url)) as response,
    ):
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= limit:
                break
    text = bytes(body[:limit]).decode(response.encoding or "utf-8", errors="replace")
    return f"HTTP {response.status_code}\n{text}"

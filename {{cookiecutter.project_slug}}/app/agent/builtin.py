"""The tools every project starts with; each is safe by default."""

import uuid
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import select

from app.agent.tools import ToolContext, ToolError, tool
from app.conversations.models import Message
from app.files import service as files_service
from app.files import storage


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_id: uuid.UUID = Field(description="The id of a file attached to this conversation")


class UrlArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="An http(s) URL on one of the allowed hosts")


@tool
async def current_time(args: NoArguments, context: ToolContext) -> str:
    """The current date and time in UTC, in ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@tool
async def read_file(args: FileArguments, context: ToolContext) -> str:
    """Read a text file attached to a message of this conversation."""
    async with context.sessionmaker() as session:
        # Attached here, and the caller's: the same "not found" for any other id.
        attached = await session.scalar(
            select(Message.id)
            .where(
                Message.conversation_id == context.conversation_id,
                Message.file_ids.any_() == args.file_id,
            )
            .limit(1)
        )
        found = await files_service.get_files(
            session=session, owner=context.owner, file_ids=[args.file_id]
        )
    if attached is None or not found:
        raise ToolError(f"file {args.file_id} is not attached to this conversation")
    record = found[0]
    if not files_service.is_text(record.content_type):
        raise ToolError(f"file {record.filename} is {record.content_type}, not text")
    path = storage.blob_path(context.uploads_dir, record.id)
    return await storage.read_text(path, context.max_file_chars)


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

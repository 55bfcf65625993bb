"""config.yaml's agent.mcp_servers: the MCP servers whose tools the agent may call."""

import re
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    SecretStr,
    model_validator,
)

# The server's name prefixes its tools ("docs.search"): no dot, so the prefix is unambiguous.
SERVER_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
# MCP's recommended tool-name characters; "*" alone in an allowlist means every tool.
TOOL_NAME = re.compile(r"[A-Za-z0-9_./-]{1,128}")
EVERY_TOOL = "*"


class McpServerConfig(BaseModel):
    """One MCP server reached over streamable HTTP, and which of its tools the model gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SERVER_NAME)
    url: HttpUrl
    # A file holding a bearer token (a mounted secret), read once at start-up; the token
    # itself never appears in config.yaml, the environment or the logs.
    token_file: Path | None = None
    # Safe by default: an empty list offers none of the server's tools; ["*"] offers all.
    tools: frozenset[str] = frozenset()
    _token: SecretStr | None = PrivateAttr(default=None)

    @property
    def token(self) -> SecretStr | None:
        return self._token

    def allows(self, tool: str) -> bool:
        return EVERY_TOOL in self.tools or tool in self.tools

    @model_validator(mode="after")
    def _check(self) -> Self:
        if EVERY_TOOL in self.tools and len(self.tools) > 1:
            raise ValueError(f'tools: "{EVERY_TOOL}" (every tool) stands alone')
        bad = sorted(t for t in self.tools - {EVERY_TOOL} if not TOOL_NAME.fullmatch(t))
        if bad:
            raise ValueError(f"tools: {bad[0]!r} is not a tool name")
        if self.token_file is not None:
            self._token = SecretStr(_read_token(self.token_file))
        return self


def _read_token(path: Path) -> str:
    # The message names the file, never its contents.
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"token_file {path} cannot be read: {exc.strerror}") from None
    if not token:
        raise ValueError(f"token_file {path} is empty")
    return token


def _unique_names(servers: tuple[McpServerConfig, ...]) -> tuple[McpServerConfig, ...]:
    names = [server.name for server in servers]
    if twice := [name for name in names if names.count(name) > 1]:
        raise ValueError(f"two servers are named {twice[0]}")
    return servers


McpServers = Annotated[tuple[McpServerConfig, ...], AfterValidator(_unique_names)]

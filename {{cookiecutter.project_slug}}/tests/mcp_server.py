"""A real MCP server, the SDK's own MCPServer over streamable HTTP, for tests and demos.

Run it by hand with `python -m tests.mcp_server --port 8765 --token-file secrets/mcp_token`
and add it to config.yaml (see README): agent.mcp_servers with name docs, url
http://127.0.0.1:8765/mcp, token_file secrets/mcp_token and tools [add].
"""

import argparse
import asyncio
import socket
import threading
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def build_server() -> MCPServer:
    """A server named docs with a few small tools."""
    server = MCPServer("docs", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def repeat(text: str, times: int) -> str:
        """Repeat a text a number of times."""
        return text * times

    @server.tool()
    async def wait(seconds: float) -> str:
        """Wait this many seconds, then say so."""
        await asyncio.sleep(seconds)
        return f"waited {seconds} s"

    @server.tool()
    def secret() -> str:
        """A tool that no allowlist of the tests lets through."""
        return "the secret"

    return server


class RequireToken:
    """Answer 401 to any HTTP request without `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != (
            self.expected
        ):
            await PlainTextResponse("unauthorized", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class McpTestServer:
    """The server on a port of the loopback (a free one unless given), in a thread."""

    def __init__(self, *, token: str | None = None, port: int = 0) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        app: ASGIApp = build_server().streamable_http_app()
        if token is not None:
            app = RequireToken(app, token)
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> "McpTestServer":
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the MCP test server did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token-file", type=Path)
    arguments = parser.parse_args()
    token = arguments.token_file.read_text().strip() if arguments.token_file else None
    with McpTestServer(token=token, port=arguments.port) as server:
        print(f"MCP server docs at {server.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()

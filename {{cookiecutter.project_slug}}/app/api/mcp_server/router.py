"""POST /mcp (and DELETE, which ends a session): the MCP server's streamable HTTP endpoint,
authorized as every /v1 route is (the key, its rate limit) before the SDK reads a byte.

A route rather than a mounted app, so that the key is checked by the same dependency, and
its 401 and 429 are the api's. GET, the stream a server could push notifications on, is not
offered (405, which the protocol allows): these tools send none, and each call is answered
with one JSON body, so no response holds a stream (or a stream slot) open."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Request
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.mcp_server import server
from app.api.mcp_server.calls import Caller
from app.config.sections import AppConfig
from app.deps import OwnerDep, ResourcesDep, TurnsDep

PATH = "/mcp"


class _Handled(Response):
    """The answer the session manager writes itself, on the request's own channels."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        super().__init__()
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)


class McpEndpoint:
    """The MCP server of one app: its route, and its session manager for the lifespan."""

    def __init__(self, config: AppConfig, name: str, version: str) -> None:
        options = config.mcp_server
        mcp = server.build(name, version)
        # Builds the session manager (the Starlette app it also returns is not used: the
        # route below hands requests to the manager), the way the SDK documents for several
        # servers in one app.
        mcp.streamable_http_app(
            json_response=True,
            stateless_http=options.stateless,
            # The admission middleware holds bodies to the same bound first.
            max_request_body_size=config.requests.max_json_bytes,
            session_idle_timeout=options.session_idle_seconds,
            max_sessions=options.max_sessions,
            # No Host/Origin check (the SDK's guard against DNS rebinding of a local server
            # without auth): every request needs a key, which a rebinding page does not have.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager = mcp.session_manager
        self.router = APIRouter(tags=["mcp"])
        self.router.add_api_route(
            PATH, self._handle, methods=["POST", "DELETE"], include_in_schema=False
        )

    async def _handle(
        self, request: Request, owner: OwnerDep, turns: TurnsDep, resources: ResourcesDep
    ) -> Response:
        request.scope["user"] = AuthenticatedUser(
            # The SDK binds a session to the principal that opened it: another key
            # presenting its id is answered as for an unknown session.
            AccessToken(token="", client_id=owner, scopes=[])
        )
        setattr(request.state, server.CALLER, Caller(owner, turns, resources))
        return _Handled(self.manager)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group, for the app's lifespan."""
        async with self.manager.run():
            yield

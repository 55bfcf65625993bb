"""The agent card: what another agent reads before it calls this one. Public (a client reads
it to learn how to authenticate), so it is counted against the rate limit by client address."""

from typing import Any

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    PROTOCOL_VERSION_0_3,
    PROTOCOL_VERSION_1_0,
    TransportProtocol,
)
from fastapi import APIRouter, HTTPException, Request, status

from app.agent.registry import registry_for
from app.core.metadata import project_metadata
from app.deps import ResourcesDep, SettingsDep, TurnsDep

# The JSON-RPC endpoint, under the api's prefix: it takes the API key as every /v1 route.
RPC_PATH = "/v1/a2a"
# A2A 0.3's path of the same card (agent_card_to_dict writes 0.3's fields beside 1.0's).
LEGACY_CARD_PATH = "/.well-known/agent.json"
SCHEME = "bearer"
TEXT = "text/plain"
router = APIRouter(tags=["a2a"])


@router.get(AGENT_CARD_WELL_KNOWN_PATH)
@router.get(LEGACY_CARD_PATH, include_in_schema=False)
async def get_agent_card(
    request: Request, settings: SettingsDep, resources: ResourcesDep, turns: TurnsDep
) -> dict[str, Any]:
    """The A2A agent card: the endpoint, the bearer scheme, the agent's tools as skills."""
    client = request.client.host if request.client else "unknown"
    limits = settings.config.rate_limit
    retry_after = await resources.rate_limiter.check(
        f"a2a-card:{client}", budget=settings.config.redis.timeout_seconds
    )
    if retry_after is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit exceeded: {limits.requests} requests per {limits.window_seconds} s; "
            f"retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    public = settings.config.a2a.public_url
    base_url = str(public) if public else str(request.base_url)
    tools = registry_for(settings.config.agent, turns.metrics, turns.mcp.listing).specs
    skills = [
        AgentSkill(id=t.name, name=t.name, description=t.description, tags=["tool"]) for t in tools
    ]
    return agent_card_to_dict(agent_card(settings.config.a2a.description, base_url, skills))


def agent_card(description: str, base_url: str, skills: list[AgentSkill]) -> AgentCard:
    """This service's card, reached at base_url."""
    name, version = project_metadata()
    return AgentCard(
        name=name,
        description=description,
        version=version,
        # One endpoint answers both: 0.3's method names are taken too.
        supported_interfaces=[
            AgentInterface(
                url=base_url.rstrip("/") + RPC_PATH,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=version,
            )
            for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes={
            SCHEME: SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer", description="The service's API key"
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={SCHEME: StringList()})],
        default_input_modes=[TEXT],
        default_output_modes=[TEXT],
        skills=skills,
    )

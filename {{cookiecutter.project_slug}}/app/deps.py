"""Request dependencies, as Annotated aliases for the routers.

Every dependency is `async def`, even those that only read request.state: FastAPI runs a
plain `def` dependency in a worker thread, and those hops cost the api a sixth of its
time per request (py-spy). The ones every /v1 request resolves
(authorize, the session) read request.state themselves rather than through other
dependencies: each dependency FastAPI resolves costs the request time of its own.
"""

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.security import BearerCredentials, KeyRing, unauthorized
from app.flows.turns import Agent
from app.llm.base import LLMProvider
from app.resources import Resources


async def get_resources(request: Request) -> Resources:
    return cast(Resources, request.state.resources)


async def get_app_settings(request: Request) -> Settings:
    return cast(Settings, request.state.settings)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return (await get_resources(request)).sessionmaker


SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]


async def get_session(maker: SessionmakerDep) -> AsyncIterator[AsyncSession]:
    """Yield a session and close it; services commit explicitly."""
    async with maker() as session:
        yield session


async def get_llm(resources: ResourcesDep) -> LLMProvider:
    return resources.llm


async def get_metrics(resources: ResourcesDep) -> Metrics:
    return resources.metrics


async def get_agent(request: Request, sessionmaker: SessionmakerDep) -> Agent:
    """The agent over this process's resources, writing through the request's sessionmaker."""
    resources = await get_resources(request)
    settings = await get_app_settings(request)
    return Agent(settings, sessionmaker, resources.llm, resources.metrics, resources.mcp)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
LLMDep = Annotated[LLMProvider, Depends(get_llm)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AgentDep = Annotated[Agent, Depends(get_agent)]


async def authorize(request: Request, credentials: BearerCredentials) -> str:
    """Accept a valid API key within its rate limit; return the owner its rows belong to."""
    keys = cast(KeyRing, request.state.keys)
    owner = keys.owner(credentials.credentials) if credentials is not None else None
    if owner is None:
        raise unauthorized()
    settings, resources = await get_app_settings(request), await get_resources(request)
    limits = settings.config.rate_limit
    # Per owner: the old and new value of a key being rotated share one budget.
    verdict = await resources.rate_limiter.check(
        owner, budget=settings.config.redis.timeout_seconds
    )
    if not verdict.allowed:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit exceeded: {limits.requests} requests per "
            f"{limits.window_seconds} s; retry after {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after)},
        )
    return owner


# The caller's owner id: every query of a /v1 endpoint is scoped to it.
OwnerDep = Annotated[str, Depends(authorize)]

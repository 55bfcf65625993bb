"""Request dependencies, as Annotated aliases for the routers: resources, the caller's
owner, and the rows a path names if they are the caller's.

Every one is `async def`, even those that only read request.state: FastAPI runs a plain
`def` dependency in a worker thread, a hop per request. authorize, which every /v1 request
resolves, reads request.state itself: each dependency resolved costs the request time.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Path, Request, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config.settings import Settings
from app.conversations import service as conversations
from app.conversations.models import Conversation
from app.core.security import BearerCredentials, KeyRing, unauthorized
from app.files import service as files
from app.files.models import StoredFile
from app.resources import Resources
from app.runs import service as runs
from app.runs.models import Run
from app.turns import TurnBuilder


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


async def get_turns(request: Request) -> TurnBuilder:
    """The process's one TurnBuilder: every way into the agent takes its turn from it."""
    return cast(TurnBuilder, request.state.turns)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
TurnsDep = Annotated[TurnBuilder, Depends(get_turns)]


async def authorize(request: Request, credentials: BearerCredentials) -> str:
    """Accept a valid API key within its rate limit; return the owner its rows belong to."""
    keys = cast(KeyRing, request.state.keys)
    owner = keys.owner(credentials.credentials) if credentials is not None else None
    if owner is None:
        raise unauthorized()
    settings, resources = await get_app_settings(request), await get_resources(request)
    limits = settings.config.rate_limit
    # Per owner: the old and new value of a key being rotated share one budget.
    retry_after = await resources.rate_limiter.check(
        owner, budget=settings.config.redis.timeout_seconds
    )
    if retry_after is not None:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit exceeded: {limits.requests} requests per "
            f"{limits.window_seconds} s; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    return owner


# The caller's owner id: every query of a /v1 endpoint is scoped to it.
OwnerDep = Annotated[str, Depends(authorize)]


def _owned[R](
    what: str, get: Callable[..., Awaitable[R | None]], **options: bool
) -> Callable[..., Awaitable[R]]:
    """The dependency that reads the caller's row a path's `{what}_id` names, or answers 404:
    an unknown id and another owner's are answered alike (the services take the same query
    for both), so an id tells nothing about other keys."""
    parameter = f"{what}_id"

    async def owned(
        row_id: Annotated[uuid.UUID, Path(alias=parameter)], session: SessionDep, owner: OwnerDep
    ) -> R:
        row = await get(session=session, owner=owner, **{parameter: row_id}, **options)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {row_id} not found")
        return row

    return owned


# The row a path's id names, if it is the caller's (else 404), read in the request's session.
OwnedConversation = Annotated[
    Conversation, Depends(_owned("conversation", conversations.get_conversation))
]
OwnedRun = Annotated[Run, Depends(_owned("run", runs.get_run))]
# Locked (SELECT ... FOR UPDATE) until the request's transaction ends: a cancel or a decision
# and a worker's write of the same run do not interleave.
LockedRun = Annotated[Run, Depends(_owned("run", runs.get_run, lock=True))]
OwnedFile = Annotated[StoredFile, Depends(_owned("file", files.get_file))]

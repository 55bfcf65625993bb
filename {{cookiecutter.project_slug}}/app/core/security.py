"""API key authentication."""

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.config import Settings

bearer_scheme = HTTPBearer(auto_error=False, description="One of the keys in API_KEYS")


def key_matches(candidate: str, settings: Settings) -> bool:
    """Compare against every key in constant time, so timing reveals neither key nor index."""
    given = candidate.encode()
    matches = [
        secrets.compare_digest(given, key.get_secret_value().encode()) for key in settings.api_keys
    ]
    return any(matches)


def key_id(key: str) -> str:
    """Return a short, non-reversible id of a key for rate limiting and logs."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def unauthorized() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key; send Authorization: Bearer <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]

"""API key authentication, and the owner that each key's rows are stored under."""

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from app.config.keys import ApiKey

UNNAMED_PREFIX = "key:"
UNNAMED_OWNER = re.compile(re.escape(UNNAMED_PREFIX) + "[0-9a-f]{32}")


def owner_of(key: ApiKey, secret_key: SecretStr) -> str:
    """Return the owner of the rows a key creates: its name, else an HMAC of the key.

    Rows are stored under this value, so it must never change for a key: a new derivation
    (or a new SECRET_KEY, for unnamed keys) would hide every existing row from its key.
    Names cannot hold ':', so no name can collide with an unnamed key's id.
    """
    if key.name is not None:
        return key.name
    digest = hmac.new(
        secret_key.get_secret_value().encode(), key.value.get_secret_value().encode(), "sha256"
    )
    return UNNAMED_PREFIX + digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured keys (as SHA-256 digests) with their owners, computed once at start-up."""

    entries: tuple[tuple[bytes, str], ...]

    @classmethod
    def build(cls, keys: Sequence[ApiKey], secret_key: SecretStr) -> "KeyRing":
        return cls(
            tuple((_digest(k.value.get_secret_value()), owner_of(k, secret_key)) for k in keys)
        )

    def owner(self, candidate: str) -> str | None:
        """Return the owner of a presented key, or None. Every key is compared, in constant
        time and as equal-length digests, so timing reveals neither a key, its length nor its
        place."""
        given = _digest(candidate)
        found = [owner for digest, owner in self.entries if secrets.compare_digest(given, digest)]
        return found[-1] if found else None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def unauthorized() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key; send Authorization: Bearer <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


BearerCredentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="One of the keys in API_KEYS")),
]

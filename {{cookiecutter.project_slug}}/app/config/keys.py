"""API_KEYS: entries of `name:key` or bare keys, split and checked."""

import re

from pydantic import BaseModel, ConfigDict, SecretStr

# No ':' (it separates a name from its key) and nothing that needs quoting in SQL or logs.
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class ApiKey(BaseModel):
    """One entry of API_KEYS: `name:key`, or a bare key."""

    model_config = ConfigDict(frozen=True)

    # The owner of the rows this key creates, when given; several values may share a name
    # (old and new during a rotation).
    name: str | None
    value: SecretStr


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Split a comma-separated API_KEYS value into named or bare keys.

    Messages name an entry by its position, never by its text: that text may be a key.
    """
    keys = []
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    for position, entry in enumerate(entries, start=1):
        name, separator, value = entry.partition(":")
        if not separator:
            name, value = "", entry
        elif not KEY_NAME.fullmatch(name):
            raise ValueError(
                f"entry {position}: a key name is 1-64 letters, digits, '_', '.', '@' or '-' "
                "(write each entry as name:key or as a bare key without ':')"
            )
        if not value.strip():
            raise ValueError(f"entry {position} ({name}) has no key after the ':'")
        keys.append(ApiKey(name=name or None, value=SecretStr(value.strip())))
    values = [key.value.get_secret_value() for key in keys]
    if len(set(values)) != len(values):
        raise ValueError("the same key is listed twice")
    return tuple(keys)

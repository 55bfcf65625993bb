"""Connection URLs: the asyncpg form of a PostgreSQL URL, and a password merged into a URL."""

from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def async_database_url(url: str) -> str:
    """Return the URL with the asyncpg driver, accepting the usual postgresql:// form."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("must be a postgresql:// URL") from None
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError("must be a postgresql:// URL")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def with_password(url: str, password: str) -> str:
    """Put the password into a URL that has none (credentials kept out of the URL itself)."""
    parts = urlsplit(url)
    if parts.password is not None or not parts.hostname:
        return url
    user = parts.username or ""
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))

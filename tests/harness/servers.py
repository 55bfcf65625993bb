"""What the real PostgreSQL and Redis servers of the tests share: errors, timeouts, log tails.

No Docker: the boot tests need a database and a cache, not an engine. Each server
(postgres_server.py, redis_server.py) is started from the machine's binaries in its own
temporary directory, listens on 127.0.0.1 only and is removed by close().
"""

from __future__ import annotations

import os
from pathlib import Path

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
HOST = "127.0.0.1"


class ServerUnavailable(Exception):
    """A server's binaries or account are missing; the message says how to install them."""


class ServerStartError(RuntimeError):
    """A server did not become ready in time or exited; the message carries its log tail."""


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a server log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"<no log at {path}: {error}>"
    return "\n".join(text.splitlines()[-lines:])


def new_password() -> str:
    # Hex keeps the password safe inside URLs, command lines and config files without quoting.
    return os.urandom(16).hex()

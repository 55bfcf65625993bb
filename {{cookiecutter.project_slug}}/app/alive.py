"""The worker's proof of life: `python -m app.alive` exits 0 while its last sweep is recent.

The worker writes, after every sweep that reached PostgreSQL and Redis, the time by which
the next one must have happened. This module is the container's healthcheck, run every few
seconds: standard library only, so a check does not import (and wait for) the application.
"""

import sys
import tempfile
import time
from pathlib import Path

ALIVE_FILE = Path(tempfile.gettempdir()) / "worker.alive"


def mark(deadline: float) -> None:
    ALIVE_FILE.write_text(str(deadline))


def clear() -> None:
    ALIVE_FILE.unlink(missing_ok=True)


def healthy(now: float | None = None) -> bool:
    """True while the last successful sweep's deadline has not passed."""
    try:
        deadline = float(ALIVE_FILE.read_text())
    except (OSError, ValueError):
        return False
    return (now or time.time()) < deadline


if __name__ == "__main__":
    sys.exit(0 if healthy() else 1)

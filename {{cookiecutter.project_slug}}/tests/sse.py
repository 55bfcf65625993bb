"""Read a Server-Sent Events body the way a client does: events by name, JSON data."""

import json
from typing import Any


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """Return (event, data) for every event; keep-alive comments are skipped."""
    found = []
    for block in body.replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def named(body: str, name: str) -> list[dict[str, Any]]:
    """The data of every event called `name`, in order."""
    return [data for event, data in events(body) if event == name]

"""Bounds on the run event streams one api process keeps open, in all and per key.

Each open stream polls the database every worker.events_poll_seconds for up to
worker.events_stream_seconds, so without a bound one key could hold the pool busy.
"""

from collections.abc import Callable

from fastapi import HTTPException

from app.core.admission import BUSY_RETRY_AFTER_SECONDS, Slots, SlotsByKey
from app.core.metrics import Metrics


class EventStreams:
    """Slots for open event streams: past a key's share 429, past the process's 503."""

    def __init__(self, limit: int, per_key: int, metrics: Metrics) -> None:
        self.all = Slots(
            limit,
            503,
            f"too many event streams open (limit {limit}); retry shortly",
            "event_streams",
        )
        self.by_owner = SlotsByKey(
            per_key,
            429,
            f"too many event streams of this key open (limit {per_key}); retry shortly",
            "key_event_streams",
        )
        self.metrics = metrics

    def take(self, owner: str) -> Callable[[], None]:
        """Take a slot for one of owner's streams and return what gives it back, or refuse."""
        mine = self.by_owner.of(owner)
        taken: list[Slots] = []
        for slots in (mine, self.all):
            if not slots.try_take():
                for held in taken:
                    held.give_back()
                self.by_owner.forget_idle(owner)
                self.metrics.admission_refused(slots.reason)
                raise HTTPException(
                    slots.status,
                    slots.detail,
                    headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
                )
            taken.append(slots)

        def give_back() -> None:
            for held in taken:
                held.give_back()
            self.by_owner.forget_idle(owner)

        return give_back

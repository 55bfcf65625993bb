"""Streams held open: how many one api process keeps, in all and per key (the response that
gives a slot back however its stream ends is app.api.sse's).

An open stream holds a request for as long as it runs (a run's events poll the database, a
turn waits on the model and its tools), so without a bound one key could hold the process.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from app.core.admission import BUSY_RETRY_AFTER_SECONDS, Slots, SlotsByKey
from app.core.metrics import AdmissionReason, Metrics


class StreamSlots:
    """Slots for open streams of one kind: past a key's share 429, past the process's 503."""

    def __init__(
        self,
        what: str,
        limit: int,
        per_key: int,
        reasons: tuple[AdmissionReason, AdmissionReason],
        metrics: Metrics,
    ) -> None:
        every, of_key = reasons
        self.all = Slots(limit, 503, f"too many {what} open (limit {limit}); retry shortly", every)
        self.by_owner = SlotsByKey(
            per_key,
            429,
            f"too many {what} of this key open (limit {per_key}); retry shortly",
            of_key,
        )
        self.metrics = metrics

    def _take(self, owner: str) -> Callable[[], None]:
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

    @contextmanager
    def holding(self, owner: str) -> Iterator[Callable[[], None]]:
        """The one way to take a slot: before the work that opens a stream (so that a refusal
        changes nothing); given back if that work fails, else handed to sse.respond."""
        give_back = self._take(owner)
        try:
            yield give_back
        except BaseException:
            give_back()
            raise

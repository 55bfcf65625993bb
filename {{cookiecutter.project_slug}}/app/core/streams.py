"""Streams held open: how many one api process keeps, in all and per key (the response that
gives a slot back however its stream ends is app.api.sse's).

An open stream holds a request for as long as it runs (a run's events poll the database, a
turn waits on the model and its tools), so without a bound one key could hold the process.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from app.core.admission import RETRY_AFTER, Slots, SlotsByKey, give_back, take_all
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
        self.all = Slots(limit, 503, f"{what} open", every)
        self.by_owner = SlotsByKey(Slots(per_key, 429, f"{what} of this key open", of_key))
        self.metrics = metrics

    @contextmanager
    def holding(self, owner: str) -> Iterator[Callable[[], None]]:
        """The one way to take a slot: before the work that opens a stream (so that a refusal
        changes nothing); given back if that work fails, else handed to sse.HeldStream."""
        taken = [self.by_owner.of(owner), self.all]

        def release() -> None:
            give_back(taken)
            self.by_owner.forget_idle(owner)

        if full := take_all(taken):
            self.by_owner.forget_idle(owner)
            self.metrics.admission_refused(full.reason)
            raise HTTPException(full.status, full.detail, headers=RETRY_AFTER)
        try:
            yield release
        except BaseException:
            release()
            raise


@contextmanager
def no_slot() -> Iterator[Callable[[], None]]:
    """What a request that does not wait holds instead of a slot: nothing to give back."""
    yield lambda: None

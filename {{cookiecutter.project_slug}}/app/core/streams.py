"""Streams held open: how many one api process keeps, in all and per key, and the response
that gives its slot back however the stream ends.

An open stream holds a request for as long as it runs (a run's events poll the database, a
turn waits on the model and its tools), so without a bound one key could hold the process.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from app.core.admission import BUSY_RETRY_AFTER_SECONDS, Slots, SlotsByKey
from app.core.metrics import AdmissionReason, Metrics

EVENT_STREAM = "text/event-stream"
# A comment line this often keeps proxies from closing a stream that waits on a slow tool.
KEEP_ALIVE_SECONDS = 15
# Plain newlines, not sse-starlette's CRLF default: the SSE format allows both, and a
# hand-written client that splits events on "\n\n" reads only these.
LINE_END = "\n"


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

    @contextmanager
    def holding(self, owner: str) -> Iterator[Callable[[], None]]:
        """Take a slot before the work that opens a stream (so that a refusal changes
        nothing); give it back if that work fails, else hand it to the HeldStream."""
        give_back = self.take(owner)
        try:
            yield give_back
        except BaseException:
            give_back()
            raise


class HeldStream(EventSourceResponse):
    """An event stream that gives its slot back when it ends, however it ends: the events
    generator's own `finally` would not run for a client gone before the first event."""

    def __init__(self, content: Any, give_back: Callable[[], None]) -> None:
        # KEEP_ALIVE_SECONDS read here, not bound at import: tests shorten it.
        super().__init__(content, ping=KEEP_ALIVE_SECONDS, sep=LINE_END)
        self._give_back = give_back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._give_back()

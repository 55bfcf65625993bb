"""A short, bounded wait for a slot before a refusal.

A client that retries a 503 at once (many do) comes straight back after an instant refusal:
under such load, answering refusals takes the CPU that the admitted requests need, and more
load gets less work done. Waiting a moment for a slot parks the request instead. Both the
number of requests waiting and each wait are bounded: memory stays bounded, and a request
past either bound gets the same refusal as before.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from prometheus_client import Gauge


class Waiters:
    """A first-come first-served line of at most `limit` requests, each waiting at most
    `seconds`, counted by `gauge`; a slot freed goes to the first in line (hand_over), not to
    a request arriving after it."""

    def __init__(self, limit: int, seconds: float, gauge: Gauge) -> None:
        self.limit, self.seconds, self.gauge = limit, seconds, gauge
        self._line: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._line)

    def hand_over(self) -> bool:
        """Give a freed slot to the first request in line: False if none waits (the caller
        then frees the slot itself)."""
        while self._line:
            waiter = self._line.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False

    async def wait(self, give_back: Callable[[], None]) -> bool:
        """Wait in line: True once a slot is handed over (the caller holds it); False at once
        if the line is full, or after `seconds` without one. `give_back` frees a slot that
        came to a wait cancelled meanwhile (a shutdown)."""
        if len(self._line) >= self.limit or self.seconds <= 0:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._line.append(waiter)
        try:
            with self.gauge.track_inprogress():
                async with asyncio.timeout(self.seconds):
                    await waiter
        except TimeoutError:
            pass  # the slot may have come with the timeout: _leave tells
        except BaseException:
            if self._leave(waiter):
                give_back()  # handed a slot, then cancelled (a shutdown)
            raise
        return self._leave(waiter)

    def _leave(self, waiter: asyncio.Future[None]) -> bool:
        """True if the waiter holds a slot; else take it out of the line."""
        if waiter.done() and not waiter.cancelled():
            return True
        waiter.cancel()
        # hand_over drops the cancelled ones it passes: this one may be gone already.
        with contextlib.suppress(ValueError):
            self._line.remove(waiter)
        return False

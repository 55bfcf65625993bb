"""The line for a body slot: a slot handed over is never lost."""

import asyncio

from prometheus_client import CollectorRegistry, Gauge

from app.core.waiters import Waiters


def _waiters(limit: int = 4, seconds: float = 60) -> Waiters:
    return Waiters(limit, seconds, Gauge("waiting", "", registry=CollectorRegistry()))


async def test_a_slot_handed_to_a_wait_cancelled_meanwhile_is_given_back() -> None:
    waiters, given_back = _waiters(), []
    wait = asyncio.create_task(waiters.wait(lambda: given_back.append(1)))
    await asyncio.sleep(0)  # in line
    waiters.hand_over()
    wait.cancel()  # before it ran again: it holds the slot, but will not use it

    await asyncio.gather(wait, return_exceptions=True)

    assert wait.cancelled()
    assert given_back == [1]
    assert waiters.waiting == 0


async def test_a_wait_that_ends_leaves_the_line_and_gets_nothing_handed() -> None:
    waiters = _waiters(seconds=0.01)

    got = await waiters.wait(lambda: None)

    assert got is False
    assert waiters.waiting == 0
    assert waiters.hand_over() is False

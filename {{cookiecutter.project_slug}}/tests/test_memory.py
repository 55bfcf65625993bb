"""The api's and the worker's entry points freeze the heap they start with, so that a full
garbage collection does not walk the libraries' objects on every pass (a pause of ~150 ms)."""

import asyncio
import gc
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvicorn

from app import __main__ as api_entry
from app import worker
from app.config.settings import Settings


@pytest.fixture
def frozen_when_serving() -> Iterator[list[int]]:
    """How many objects were frozen when the process began to serve; unfrozen after."""
    seen: list[int] = []
    yield seen
    gc.unfreeze()


def _recording(seen: list[int]) -> Callable[..., None]:
    def serve(*_: object, **__: object) -> None:
        seen.append(gc.get_freeze_count())

    return serve


def test_the_api_freezes_its_imported_heap_before_it_serves(
    monkeypatch: pytest.MonkeyPatch, frozen_when_serving: list[int]
) -> None:
    monkeypatch.setattr(uvicorn, "main", _recording(frozen_when_serving))
    monkeypatch.setattr(sys, "argv", ["app"])
    # Its SIGTERM handler is the server's, not this test process's.
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    gc.unfreeze()

    api_entry.main()

    # The libraries' modules alone are far more than this.
    assert frozen_when_serving[0] > 100_000


def test_the_worker_freezes_its_imported_heap_before_it_serves(
    monkeypatch: pytest.MonkeyPatch, frozen_when_serving: list[int], settings: Settings
) -> None:
    def run(coroutine: Coroutine[Any, Any, None]) -> None:
        coroutine.close()
        frozen_when_serving.append(gc.get_freeze_count())

    monkeypatch.setattr(asyncio, "run", run)
    # The test's settings, whatever the environment holds (a provider's key, for one).
    monkeypatch.setattr(worker, "get_settings", lambda: settings)
    monkeypatch.setattr(worker, "setup_logging", lambda *_: None)
    gc.unfreeze()

    assert worker.main() == 0
    assert frozen_when_serving[0] > 100_000

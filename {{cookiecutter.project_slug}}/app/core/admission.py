"""Admission of request bodies: how large, how slow, and how many at once.

Every bound answers with a 4xx or a 503 with Retry-After, at once or, when every body slot is
taken, after a short wait in a bounded line (app.core.waiters), so no client can make the api
hold more memory, disk or time than the configuration allows.
"""

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.sections import AppConfig
from app.core.metrics import AdmissionReason, Metrics
from app.core.security import KeyRing, unauthorized
from app.core.waiters import Waiters

MULTIPART_OVERHEAD_BYTES = 16 * 1024
# Slots free within seconds: a short, honest hint for clients that back off.
RETRY_AFTER = {"Retry-After": "1"}
# The body of a refusal, from the request's path, status and message.
type ErrorBody = Callable[[str, int, str], dict[str, Any]]


def detail_body(path: str, status: int, detail: str) -> dict[str, Any]:
    """FastAPI's own shape, {"detail": ...}: what the api's routes answer too."""
    return {"detail": detail}


@dataclass(slots=True)
class Slots:
    """A count of what is in flight, up to a limit, and the answer once it is reached."""

    limit: int
    status: int
    # What a refusal says there are too many of ("uploads in progress").
    what: str
    # What a refusal counts as in the metrics.
    reason: AdmissionReason
    taken: int = 0
    # Where a request may wait for a slot freed (bodies only): a slot given back goes to the
    # first in line, not to whoever comes next.
    waiters: Waiters | None = None

    @property
    def detail(self) -> str:
        return f"too many {self.what} (limit {self.limit}); retry shortly"


@dataclass(slots=True)
class SlotsByKey:
    """A copy of `each` for every key, so that one key cannot take every slot; a key's entry
    is made on first use and dropped once none of its slots is taken."""

    each: Slots
    by_key: dict[str, Slots] = field(default_factory=dict)

    def of(self, key: str) -> Slots:
        if (slots := self.by_key.get(key)) is None:
            slots = self.by_key[key] = replace(self.each)
        return slots

    def forget_idle(self, key: str) -> None:
        if (slots := self.by_key.get(key)) is not None and slots.taken == 0:
            del self.by_key[key]


def take_all(slots: list[Slots]) -> Slots | None:
    """Take a slot of each, or none: None, else the first that is full."""
    for count, each in enumerate(slots):
        # The event loop runs one task at a time: checking and taking a slot, with no await
        # in between, cannot race.
        if each.taken >= each.limit:
            give_back(slots[:count])
            return each
        each.taken += 1
    return None


def give_back(taken: list[Slots]) -> None:
    """Give back every slot taken, emptying the list: a second call gives back nothing."""
    while taken:
        slots = taken.pop()
        if slots.waiters is None or not slots.waiters.hand_over():
            slots.taken -= 1


class _BodyRefusedError(Exception):
    def __init__(self, status: int, detail: str, reason: AdmissionReason) -> None:
        super().__init__(detail)
        self.status, self.detail, self.reason = status, detail, reason


class AdmissionMiddleware:
    """Bound each request body in size and time, and the bodies and uploads in flight."""

    def __init__(
        self,
        app: ASGIApp,
        config: AppConfig,
        keys: KeyRing,
        protected_prefix: str | tuple[str, ...],
        metrics: Metrics,
        error_body: ErrorBody = detail_body,
    ) -> None:
        self.app, self.keys, self.metrics, self.error_body = app, keys, metrics, error_body
        self.protected_prefix = protected_prefix
        requests, uploads = config.requests, config.uploads
        self.max_json_bytes, self.timeout = requests.max_json_bytes, requests.body_timeout_seconds
        # Multipart framing (boundaries, part headers) adds a little to the file itself.
        self.max_upload_bytes = uploads.max_bytes + MULTIPART_OVERHEAD_BYTES
        bodies, all_uploads = requests.max_bodies_in_flight, uploads.max_concurrent
        per_key = uploads.max_concurrent_per_key
        self.bodies = Slots(bodies, 503, "requests with a body in progress", "bodies_in_flight")
        self.bodies.waiters = Waiters(
            requests.max_waiting, requests.max_wait_seconds, metrics.admission_waiting
        )
        self.uploads = Slots(all_uploads, 503, "uploads in progress", "uploads_in_flight")
        self.uploads_by_owner = SlotsByKey(
            Slots(per_key, 429, "uploads of this key in progress", "key_uploads_in_flight")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or not (_declared_length(headers) or headers.get("transfer-encoding")):
            await self.app(scope, receive, send)
            return
        # The parsing HTTPBearer does, so that both see the same key.
        scheme, token = get_authorization_scheme_param(headers.get("authorization"))
        owner = self.keys.owner(token) if scheme.lower() == "bearer" else None
        if scope["path"].startswith(self.protected_prefix) and owner is None:
            # Before a byte of the body is read: a caller without a key holds no slot.
            refusal = unauthorized()
            await self._answer(scope, send, refusal.status_code, refusal.detail, refusal.headers)
            return
        upload = headers.get("content-type", "").lower().startswith("multipart/form-data")
        max_bytes = self.max_upload_bytes if upload else self.max_json_bytes
        body = _Body(max_bytes, self.timeout, receive)
        if _declared_length(headers) > max_bytes:
            self.metrics.admission_refused("too_large")
            await self._answer(scope, send, 413, body.too_large())
            return
        taken = [self.bodies]
        if upload:
            taken += [self.uploads_by_owner.of(owner), self.uploads] if owner else [self.uploads]
        try:
            if full := await self._take(taken):
                taken.clear()
                # Read and discard the body first: answering while the client is still
                # sending makes the server close the connection, and most clients then lose
                # the answer. Discarding holds no memory and no disk, and stops at the size
                # and time limits.
                await body.discard()
                self.metrics.admission_refused(full.reason)
                await self._answer(scope, send, full.status, full.detail, RETRY_AFTER)
            else:
                await self._admit(scope, send, body, taken)
        finally:
            give_back(taken)
            if owner is not None:
                self.uploads_by_owner.forget_idle(owner)

    async def _take(self, taken: list[Slots]) -> Slots | None:
        """take_all, but a request that finds every body slot taken first waits in line for
        one (the body stays unread meanwhile): None, else the first that is full."""
        full = take_all(taken)
        waiters = self.bodies.waiters
        if full is not self.bodies or waiters is None:
            return full
        if not await waiters.wait(lambda: give_back([self.bodies])):
            return full
        # The body slot was handed over; an upload takes its own slots now, or gives it back.
        if full := take_all(taken[1:]):
            give_back([self.bodies])
        return full

    async def _admit(self, scope: Scope, send: Send, body: "_Body", taken: list[Slots]) -> None:
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Once the body is refused, the app's own answer to the broken stream (FastAPI
            # turns it into a 400) is dropped in favour of the refusal below.
            if body.refused is not None and not started:
                return
            if message["type"] == "http.response.start":
                started = True
                # The app is done with the body once it answers. An answer that streams on
                # (a turn) is bounded by its own slots: holding this one for the stream's
                # whole life capped a process at max_bodies_in_flight streams.
                give_back(taken)
            await send(message)

        try:
            await self.app(scope, body.receive, guarded_send)
        except _BodyRefusedError:
            if started:
                raise
        if body.refused is not None and not started:
            self.metrics.admission_refused(body.refused.reason)
            await self._answer(scope, send, body.refused.status, body.refused.detail)

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        status: int,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = self.error_body(scope["path"], status, detail)
        await JSONResponse(body, status_code=status, headers=headers)(scope, _no_receive, send)


class _Body:
    """The request's receive channel, held to the size limit and the time limit."""

    def __init__(self, max_bytes: int, timeout: float, receive: Receive) -> None:
        self.max_bytes, self.timeout = max_bytes, timeout
        self.deadline = time.monotonic() + timeout
        self.received = 0
        self.complete = False
        self.refused: _BodyRefusedError | None = None
        self._receive = receive

    def too_large(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes} bytes"

    async def receive(self) -> Message:
        if self.complete:
            # After the body only a disconnect can come (streaming replies wait for it):
            # no deadline applies any more.
            return await self._receive()
        try:
            async with asyncio.timeout(self.deadline - time.monotonic()):
                message = await self._receive()
        except TimeoutError:
            detail = f"request body not received within {self.timeout:g} s"
            self.refused = _BodyRefusedError(408, detail, "body_timeout")
            raise self.refused from None
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            self.refused = _BodyRefusedError(413, self.too_large(), "too_large")
            raise self.refused
        self.complete = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    async def discard(self) -> None:
        try:
            while not self.complete:
                await self.receive()
        except _BodyRefusedError:
            pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _declared_length(headers: Headers) -> int:
    digits = headers.get("content-length", "")
    return int(digits) if digits.isdigit() else 0

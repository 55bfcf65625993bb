"""The clients of benchmarks/benchmark_streams.py: many streamed turns at once, each timed token by
token; prints what they saw as one JSON object.

    python benchmark_streams_clients.py < plan.json

The plan names the server (host, port), one request (path, headers) per client, the body, how
many seconds the clients' starts are spread over, and how long to wait at most. Every token's
text is the time the model sent it (benchmark_streams_model.py), so a client's receive time
minus it is what everything between the model and the client added. A stream counts as held
once its first token arrived, and as ok when it ends with `done` (or the model's `[DONE]`)
after every token. Plain asyncio protocols rather than an HTTP client library: 2,000 of them
read 40,000 tokens a second on a core shared with the model.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TypedDict, cast

# A token event's JSON, in the model's chunks and in every relay's `token` events alike. A
# `done` event carries the whole reply, many timestamps in one string, which this never matches.
_TOKEN = re.compile(rb'"content": ?"(\d{19}) "')
_ENDS = (b"event: done", b"data: [DONE]")


class Target(TypedDict):
    """One client's request: where it posts and with which headers."""

    path: str
    headers: dict[str, str]


class Plan(TypedDict):
    """What benchmark_streams.py hands the clients on standard input."""

    host: str
    port: int
    requests: list[Target]
    body: dict[str, object]
    ramp_seconds: float
    tokens: int
    deadline_seconds: float


class Percentiles(TypedDict):
    p50: float
    p99: float
    max: float


class Summary(TypedDict):
    """What the clients print: one JSON object."""

    clients: int
    ok: int
    errors: dict[str, int]
    peak_open: int
    tokens: int
    delay_ms: Percentiles
    first_token_ms: Percentiles


@dataclass
class Tally:
    """What all the clients saw."""

    expected_tokens: int
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    open: int = 0
    peak_open: int = 0
    delays_ms: list[float] = field(default_factory=list)
    first_token_ms: list[float] = field(default_factory=list)
    finished: int = 0


class Client(asyncio.Protocol):
    """One streamed turn over one connection."""

    def __init__(self, request: bytes, tally: Tally, done: asyncio.Event, total: int) -> None:
        self.request, self.tally, self.done, self.total = request, tally, done, total
        self.buffer = b""
        self.status: int | None = None
        self.tokens = 0
        self.sent_at = 0.0
        self.outcome: str | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.sent_at = time.time()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        received_ns = time.time_ns()
        self.buffer += data
        if self.status is None:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            self.status = int(head.split(b" ", 2)[1])
            if self.status != 200:
                self._end(f"HTTP {self.status}")
                return
            self.buffer = rest
        # Only whole events: a token split across two reads is read with the second.
        complete, separator, self.buffer = self.buffer.rpartition(b"\n\n")
        if not separator:
            self.buffer = complete
            return
        for match in _TOKEN.finditer(complete):
            self._token(received_ns, int(match[1]))
        if b"event: error" in complete:
            self._end("error event")
        elif any(end in complete for end in _ENDS):
            ended = "ok" if self.tokens == self.tally.expected_tokens else "short"
            self._end(ended)

    def _token(self, received_ns: int, sent_ns: int) -> None:
        if self.tokens == 0:
            self.tally.first_token_ms.append((time.time() - self.sent_at) * 1000)
            self.tally.open += 1
            self.tally.peak_open = max(self.tally.peak_open, self.tally.open)
        self.tokens += 1
        self.tally.delays_ms.append((received_ns - sent_ns) / 1e6)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"closed after {_bucket(self.tokens)} tokens")

    def _end(self, outcome: str) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        if self.tokens:
            self.tally.open -= 1
        if outcome == "ok":
            self.tally.ok += 1
        else:
            self.tally.errors[outcome] += 1
        self.tally.finished += 1
        if self.tally.finished == self.total:
            self.done.set()
        assert self.transport is not None
        self.transport.close()


def _bucket(tokens: int) -> str:
    return "0" if tokens == 0 else "some"


def _request(plan: Plan, target: Target) -> bytes:
    body = json.dumps(plan["body"]).encode()
    headers = {
        "Host": f"{plan['host']}:{plan['port']}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **target["headers"],
    }
    lines = [f"POST {target['path']} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(plan: Plan) -> Summary:
    targets = plan["requests"]
    tally = Tally(expected_tokens=plan["tokens"])
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    spread = plan["ramp_seconds"] / len(targets)
    start = loop.time()

    async def one(index: int, target: Target) -> None:
        await asyncio.sleep(max(0.0, start + index * spread - loop.time()))
        client = Client(_request(plan, target), tally, done, len(targets))
        try:
            await loop.create_connection(lambda: client, plan["host"], plan["port"])
        except OSError as exc:
            client.outcome = "connect failed"
            tally.errors[f"connect: {exc.strerror}"] += 1
            tally.finished += 1
            if tally.finished == len(targets):
                done.set()

    starters = [asyncio.create_task(one(i, target)) for i, target in enumerate(targets)]
    try:
        await asyncio.wait_for(done.wait(), plan["deadline_seconds"])
    except TimeoutError:
        tally.errors["still open at the deadline"] += len(targets) - tally.finished
    await asyncio.gather(*starters)
    return _summary(tally, len(targets))


def _summary(tally: Tally, clients: int) -> Summary:
    def percentiles(values: list[float]) -> Percentiles:
        if len(values) < 2:
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        cuts = statistics.quantiles(values, n=100)
        return {"p50": cuts[49], "p99": cuts[98], "max": max(values)}

    return {
        "clients": clients,
        "ok": tally.ok,
        "errors": dict(tally.errors),
        "peak_open": tally.peak_open,
        "tokens": len(tally.delays_ms),
        "delay_ms": percentiles(tally.delays_ms),
        "first_token_ms": percentiles(tally.first_token_ms),
    }


def main() -> None:
    # Two sockets per stream on this side's core: far beyond the usual 1,024 descriptors.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    plan = cast(Plan, json.load(sys.stdin))
    import uvloop

    print(json.dumps(uvloop.run(run(plan))))


if __name__ == "__main__":
    main()

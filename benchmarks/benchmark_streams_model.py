"""The slow model of benchmarks/benchmark_streams.py: an OpenAI-compatible chat-completions server
that streams one token every --interval seconds for --seconds.

    python benchmark_streams_model.py --port 8000 --interval 0.05 --seconds 10 [--tool-calls 2]

Each token's text is the wall-clock time it was sent, in nanoseconds, and a space: the clients
subtract it from the time they receive it, so what every relay in between adds is measured
token by token, whatever the relay's format. It speaks just enough HTTP/1.1 for the openai SDK
and httpx (keep-alive, Content-Length bodies, chunked replies) on asyncio's transports rather
than a web framework: at 2,000 streams it sends 40,000 tokens a second, and it shares its core
with the clients that measure, so its own cost must stay small.

With --tool-calls N (benchmarks/benchmark_worker_slow.py: an agent's run), it answers a
conversation holding fewer than N tool results with a call of the `current_time` tool, and
otherwise with text; an unstreamed request then gets its whole answer after --seconds, as from
a real model (without it, an unstreamed request is answered at once with a short text).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import cast

# Each token: one SSE event in one HTTP chunk, its text the time it was sent (ns) and a space.
_TOKEN = (
    '{{"id":"c","object":"chat.completion.chunk","created":0,"model":"slow",'
    '"choices":[{{"index":0,"delta":{{"content":"{} "}},"finish_reason":null}}]}}'
)
_STOP = (
    '{"id":"c","object":"chat.completion.chunk","created":0,"model":"slow",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
)
_CALL = (
    '{{"id":"c","object":"chat.completion.chunk","created":0,"model":"slow",'
    '"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"{}","type":"function",'
    '"function":{{"name":"current_time","arguments":"{{}}"}}}}]}},"finish_reason":null}}]}}'
)
_STOP_CALLING = _STOP.replace('"stop"', '"tool_calls"')
_USAGE = (
    '{{"id":"c","object":"chat.completion.chunk","created":0,"model":"slow","choices":[],'
    '"usage":{{"prompt_tokens":1,"completion_tokens":{0},"total_tokens":{1}}}}}'
)


def _chunk(data: str) -> bytes:
    """One Server-Sent Event as one HTTP/1.1 chunk."""
    event = f"data: {data}\n\n".encode()
    return b"%x\r\n%b\r\n" % (len(event), event)


class SlowModel(asyncio.Protocol):
    """One connection: requests one after the other, each answered by a timed stream."""

    def __init__(self, interval: float, tokens: int, tool_calls: int = 0) -> None:
        self.interval, self.tokens, self.tool_calls = interval, tokens, tool_calls
        # The id of the tool call the current answer ends with, if it does.
        self.calling: str | None = None
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # The relay went away (its client did): the stream stops, as a real model's would.
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, found, rest = self.buffer.partition(b"\r\n\r\n")
        if not found:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        body, self.buffer = rest[:length], rest[length:]
        self._answer(json.loads(body or b"{}"))

    def _answer(self, request: dict[str, object]) -> None:
        assert self.transport is not None
        self.calling = self._call_for(request)
        if not request.get("stream"):
            if self.tool_calls:
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(self.tokens * self.interval, self._whole)
            else:
                self._whole()
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        self._send(loop, loop.time(), 0)

    def _call_for(self, request: dict[str, object]) -> str | None:
        """The id of the tool call to answer with, or None for text (see the module's doc)."""
        messages = request.get("messages")
        if not self.tool_calls or not isinstance(messages, list):
            return None
        results = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
        return f"call_{results}" if results < self.tool_calls else None

    def _whole(self) -> None:
        """An unstreamed answer: a tool call, or text (one word per token in the tools mode)."""
        assert self.transport is not None
        self.timer = None
        if self.transport.is_closing():
            return
        message: dict[str, object] = {"role": "assistant", "content": "not streamed"}
        reason = "stop"
        if self.calling:
            function = {"name": "current_time", "arguments": "{}"}
            call = {"id": self.calling, "type": "function", "function": function}
            message, reason = (
                {"role": "assistant", "content": None, "tool_calls": [call]},
                "tool_calls",
            )
        elif self.tool_calls:
            message["content"] = "word " * self.tokens
        usage = {"prompt_tokens": 1, "completion_tokens": self.tokens}
        usage["total_tokens"] = self.tokens + 1
        choice = {"index": 0, "message": message, "finish_reason": reason}
        reply = json.dumps(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": "slow",
                "choices": [choice],
                **({"usage": usage} if self.tool_calls else {}),
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%b" % (len(reply), reply)
        )

    def _send(self, loop: asyncio.AbstractEventLoop, start: float, sent: int) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        if sent == self.tokens:
            self.timer = None
            usage = _USAGE.format(self.tokens, self.tokens + 1)
            ending = _chunk(_STOP) + _chunk(usage) + _chunk("[DONE]") + b"0\r\n\r\n"
            if self.calling:
                call = _chunk(_CALL.format(self.calling)) + _chunk(_STOP_CALLING)
                ending = call + _chunk(usage) + _chunk("[DONE]") + b"0\r\n\r\n"
            self.transport.write(ending)
            return
        self.transport.write(_chunk(_TOKEN.format(time.time_ns())))
        # On a fixed schedule from the start, so that a late tick does not delay the rest.
        due = start + (sent + 1) * self.interval
        self.timer = loop.call_at(due, self._send, loop, start, sent + 1)


async def serve(port: int, interval: float, tokens: int, tool_calls: int = 0) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SlowModel(interval, tokens, tool_calls), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between tokens")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each stream")
    parser.add_argument(
        "--tool-calls", type=int, default=0, help="tool results a conversation needs before text"
    )
    options = parser.parse_args()
    tokens = round(options.seconds / options.interval)
    # A socket per call in flight: thousands of them.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(serve(options.port, options.interval, tokens, options.tool_calls))


if __name__ == "__main__":
    main()

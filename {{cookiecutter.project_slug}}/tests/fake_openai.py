"""A real HTTP server speaking OpenAI's chat-completions wire format, for tests and demos.

Run it by hand with `python -m tests.fake_openai --port 8081` and point config.yaml's
llm.base_url at http://127.0.0.1:8081/v1 to try the openai provider with no key.
"""

import argparse
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMPLETIONS_PATH = "/v1/chat/completions"
# Every answer of the fake model costs this much.
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


# One tool call a line; [ \t], not \s: a call without arguments must not take the next line.
TOOL_LINE = re.compile(r"^/tool[ \t]+(?P<name>\S+)[ \t]*(?P<arguments>.*)$", re.MULTILINE)


def reply_to(request: dict[str, Any]) -> str:
    """The fake model's answer: deterministic, and it shows what it was sent."""
    messages = request.get("messages", [])
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"fake reply to: {last}"


def tool_call_for(request: dict[str, Any]) -> dict[str, Any] | None:
    """The next tool call the request asks for, or None for a text reply.

    Like the echo provider: each `/tool NAME {json}` line of the last user message is one
    call, in order; a call is made only for a tool the request offers.
    """
    messages = request.get("messages", [])
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    if last < 0:
        return None
    wanted = TOOL_LINE.findall(messages[last]["content"] or "")
    done = sum(1 for m in messages[last + 1 :] if m["role"] == "tool")
    offered = {tool["function"]["name"] for tool in request.get("tools", [])}
    if done >= len(wanted) or wanted[done][0] not in offered:
        return None
    name, arguments = wanted[done]
    return {
        "id": f"call_fake_{done + 1}",
        "type": "function",
        "function": {"name": name, "arguments": arguments.strip() or "{}"},
    }


class FakeOpenAI(ThreadingHTTPServer):
    """Serve chat completions; `fail_with` makes every request fail with that HTTP status,
    `break_stream` every stream after its first token ("error" chunk or "malformed" JSON),
    `pings` a comment and an event without data before each chunk (as some servers keep a
    slow stream open)."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fail_with: int | None = None
        self.break_stream: str | None = None
        self.pings = False
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        # What each answer reports it used, from the request.
        self.usage: Callable[[dict[str, Any]], dict[str, Any]] = lambda _: USAGE

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        # A short poll: shutdown() waits for it, once per test (the default is half a second).
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path != COMPLETIONS_PATH:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.server.requests.append(body)
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.server.fail_with is not None:
            error = {"error": {"message": "upstream exploded", "type": "server_error"}}
            self._json(self.server.fail_with, error)
        elif body.get("stream"):
            self._stream(body)
        else:
            self._json(200, {**_completion(body), "usage": self.server.usage(body)})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        call = tool_call_for(body)
        if call is not None:
            # As real servers do: the id and name first, the arguments in fragments.
            head = {"index": 0, "id": call["id"], "type": "function"}
            head["function"] = {"name": call["function"]["name"], "arguments": ""}
            self._event(_chunk(body, {"tool_calls": [head]}))
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 4):
                piece = {"index": 0, "function": {"arguments": arguments[start : start + 4]}}
                self._event(_chunk(body, {"tool_calls": [piece]}))
            self._event(_chunk(body, {}, finish_reason="tool_calls"))
        else:
            for text in re.findall(r"\S+\s*", reply_to(body)):
                self._event(_chunk(body, {"content": text}))
                if self.server.break_stream is not None:
                    self._broken(self.server.break_stream)
                    return
            self._event(_chunk(body, {}, finish_reason="stop"))
        if body.get("stream_options", {}).get("include_usage"):
            self._event({**_chunk(body, {}), "choices": [], "usage": self.server.usage(body)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _broken(self, how: str) -> None:
        """End the stream as a failing server does: an error chunk, or JSON cut short."""
        if how == "error":
            self._event({"error": {"message": "overloaded; your prompt was: ...", "type": "x"}})
        else:
            self.wfile.write(b'data: {"choices": [{"delta": {"content": "trunc\n\n')
        self.wfile.flush()
        self.close_connection = True

    def _event(self, payload: dict[str, Any]) -> None:
        if self.server.pings:
            self.wfile.write(b": keep-alive\n\nevent: ping\n\n")
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    call = tool_call_for(body)
    message: dict[str, Any] = {"role": "assistant", "content": reply_to(body)}
    if call is not None:
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if call else "stop",
            }
        ],
        "usage": USAGE,
    }


def _chunk(
    body: dict[str, Any], delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8081)
    port = parser.parse_args().port
    with FakeOpenAI(port) as server:
        print(f"fake OpenAI endpoint at {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()

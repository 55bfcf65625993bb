"""A real HTTP server speaking Anthropic's Messages API, for tests and demos.

Run it by hand with `python -m tests.fake_anthropic --port 8082` and point an
anthropic.AsyncAnthropic client's base_url at http://127.0.0.1:8082 to try the anthropic
provider with no key.

Its model is fake_openai's: the reply is `fake reply to: <last user text>`, and each
`/tool NAME {json}` line of that text is one tool call, one per step, in order. Its prompt
cache is real enough to count: the prefix up to each cache_control breakpoint (tools, then
system) is written the first time it is seen and read afterwards.
"""

import argparse
import json
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fake_openai import TOOL_LINE

MESSAGES_PATH = "/v1/messages"
# The error type Anthropic's API names in its body for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def last_user_text(request: dict[str, Any]) -> tuple[str, int]:
    """The last text a user sent, and how many tool results came after it."""
    text, results = "", 0
    for message in request.get("messages", []):
        if message["role"] != "user":
            continue
        for block in _blocks(message["content"]):
            if block["type"] == "text":
                text, results = block["text"], 0
            elif block["type"] == "tool_result":
                results += 1
    return text, results


def reply_to(request: dict[str, Any]) -> str:
    """The fake model's answer: deterministic, and it shows what it was sent."""
    return f"fake reply to: {last_user_text(request)[0]}"


def tool_use_for(request: dict[str, Any]) -> dict[str, Any] | None:
    """The next tool_use block the request asks for, or None for a text reply.

    Each `/tool NAME {json}` line of the last user text is one call, in order; a call is
    made only for a tool the request offers.
    """
    text, done = last_user_text(request)
    wanted = TOOL_LINE.findall(text)
    offered = {tool["name"] for tool in request.get("tools", [])}
    if done >= len(wanted) or wanted[done][0] not in offered:
        return None
    name, arguments = wanted[done]
    try:
        tool_input = json.loads(arguments.strip() or "{}")
    except json.JSONDecodeError:
        tool_input = None
    if not isinstance(tool_input, dict):
        # The API's tool input is always an object.
        tool_input = {}
    return {"type": "tool_use", "id": f"toolu_fake_{done + 1}", "name": name, "input": tool_input}


def api_key_of(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: the API takes it as x-api-key or as a bearer token."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None


class FakeAnthropic(ThreadingHTTPServer):
    """Serve POST /v1/messages. Knobs: `fail_with` answers every request with that HTTP
    status and Anthropic's error body; `error_midstream` (an error type such as
    "overloaded_error") ends every stream with an `event: error` after its first text;
    `cut_stream` ends it there with nothing more, as a dropped connection does."""

    daemon_threads = True

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", key: str | None = None) -> None:
        super().__init__((host, port), _Handler)
        # With a key, a request carrying any other is refused, as the API refuses it.
        self.key = key
        self.fail_with: int | None = None
        self.error_midstream: str | None = None
        self.cut_stream = False
        self.calls = 0
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        # The usage each answer reported, in order, for tests to compare with.
        self.usages: list[dict[str, int]] = []
        self._cached: set[str] = set()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.calls += 1
            self.requests.append(body)
            self.headers_seen.append(headers)

    def usage_for(self, request: dict[str, Any], output_tokens: int) -> dict[str, int]:
        """Count the request's tokens; the prefix up to a breakpoint is cached once seen."""
        parts = _prefix_parts(request)
        prefixes = [json.dumps(parts[: i + 1]) for i, p in enumerate(parts) if "cache_control" in p]
        with self._lock:
            read = max((len(p) for p in prefixes if p in self._cached), default=0)
            written = max((len(p) for p in prefixes), default=0)
            self._cached.update(prefixes)
            whole = len(json.dumps(parts)) + len(json.dumps(request.get("messages", [])))
            usage = {
                "input_tokens": _tokens(whole - written),
                "cache_read_input_tokens": _tokens(read),
                "cache_creation_input_tokens": _tokens(written - read),
                "output_tokens": output_tokens,
            }
            self.usages.append(usage)
        return usage

    def __enter__(self) -> "FakeAnthropic":
        # A short poll: shutdown() waits for it, once per test.
        serve = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.record(body, headers)
        if self.path != MESSAGES_PATH:
            self._error(404, "not_found_error")
        elif self.server.fail_with is not None:
            status = self.server.fail_with
            self._error(status, ERROR_TYPES.get(status, "api_error"))
        elif not (key := api_key_of(headers)) or self.server.key not in (None, key):
            self._error(401, "authentication_error")
        elif body.get("stream"):
            self._stream(body)
        else:
            self._json(200, _message(self.server, body))

    def _error(self, status: int, kind: str) -> None:
        # As the real API may: the message repeats part of the request.
        error = {"type": kind, "message": f"{kind}; your prompt was: ..."}
        self._json(status, {"type": "error", "error": error})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        call = tool_use_for(body)
        reply = reply_to(body)
        usage = self.server.usage_for(body, _output_tokens(call, reply))
        # message_start counts the input; message_delta carries the output's final count.
        start = {**_envelope(body), "content": [], "stop_reason": None}
        self._event("message_start", {"message": {**start, "usage": {**usage, "output_tokens": 1}}})
        if call is not None:
            self._tool_use(call)
        elif not self._text(reply):
            return
        delta = {"stop_reason": "tool_use" if call else "end_turn", "stop_sequence": None}
        usage_delta = {"output_tokens": usage["output_tokens"]}
        self._event("message_delta", {"delta": delta, "usage": usage_delta})
        self._event("message_stop", {})
        self.close_connection = True

    def _text(self, reply: str) -> bool:
        """Stream the reply word by word; False if the stream was broken midway."""
        self._event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        self._event("ping", {})
        for piece in re.findall(r"\S+\s*", reply):
            self._event(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
            )
            if self.server.error_midstream is not None:
                kind = self.server.error_midstream
                self._event("error", {"error": {"type": kind, "message": f"{kind}; prompt: ..."}})
            if self.server.error_midstream is not None or self.server.cut_stream:
                self.close_connection = True
                return False
        self._event("content_block_stop", {"index": 0})
        return True

    def _tool_use(self, call: dict[str, Any]) -> None:
        # As the real API does: id and name first with an empty input, then JSON fragments
        # (for a call without arguments, a single empty one).
        self._event("content_block_start", {"index": 0, "content_block": {**call, "input": {}}})
        arguments = json.dumps(call["input"]) if call["input"] else ""
        half = len(arguments) // 2
        pieces = ["", arguments[:half], arguments[half:]] if arguments else [""]
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece}
            self._event("content_block_delta", {"index": 0, "delta": delta})
        self._event("content_block_stop", {"index": 0})

    def _event(self, name: str, payload: dict[str, Any]) -> None:
        data = json.dumps({"type": name, **payload})
        self.wfile.write(f"event: {name}\ndata: {data}\n\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _message(server: FakeAnthropic, body: dict[str, Any]) -> dict[str, Any]:
    call = tool_use_for(body)
    reply = reply_to(body)
    content = [call] if call is not None else [{"type": "text", "text": reply}]
    return {
        **_envelope(body),
        "content": content,
        "stop_reason": "tool_use" if call else "end_turn",
        "usage": server.usage_for(body, _output_tokens(call, reply)),
    }


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "stop_sequence": None,
    }


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _prefix_parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    """What a prompt cache prefix is made of, in the API's order: the tools, then system."""
    return [*request.get("tools", []), *_blocks(request.get("system", []))]


def _output_tokens(call: dict[str, Any] | None, reply: str) -> int:
    return 1 + _tokens(len(json.dumps(call["input"]))) if call else len(reply.split())


def _tokens(characters: int) -> int:
    # About four characters a token, as for English text.
    return max(0, characters) // 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--key", help="refuse requests that carry another key")
    args = parser.parse_args()
    with FakeAnthropic(args.port, host=args.host, key=args.key) as server:
        print(f"fake Anthropic endpoint at {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()

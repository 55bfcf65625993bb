"""A real HTTP server speaking the Gemini API's generateContent wire format, for tests and demos.

Run it by hand with `python -m tests.fake_gemini --port 8082` and build the client with
`genai.Client(api_key="any", http_options=types.HttpOptions(base_url="http://127.0.0.1:8082"))`
to try the gemini provider with no key.
"""

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_gemini_model import (
    function_call_for,
    missing_signature,
    reply_to,
    signature_for,
    tokens,
)

# google-genai 3.x calls v1 by default; v1beta is what the REST reference and older SDKs use.
_METHOD_PATH = re.compile(
    r"^/(?:v1|v1beta)/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)
# Every answer of the fake model thinks this much before it writes.
THOUGHTS_TOKENS = 2
# google.rpc status names, as Google's error bodies carry them.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class FakeGemini(ThreadingHTTPServer):
    """Serve generateContent and streamGenerateContent.

    Knobs: `fail_with` makes every request fail with that HTTP status (Google's error body);
    `block_with` ends every answer with that finishReason and no parts (a "SAFETY" block);
    `drop_stream` ends every stream after its first chunk, with no finishReason;
    `hang_up` closes every connection without an answer; `stall_seconds` waits before one;
    `malform` answers with JSON cut short;
    `with_call_ids` gives function calls an id (the Developer API often sends none).
    """

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fail_with: int | None = None
        self.block_with: str | None = None
        self.drop_stream = False
        self.hang_up = False
        self.malform = False
        self.stall_seconds = 0.0
        self.with_call_ids = False
        self.calls = 0
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.queries: list[dict[str, list[str]]] = []
        self.headers_seen: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._last_prompt: tuple[Any, list[Any]] = (None, [])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def usage(self, request: dict[str, Any], answer: list[dict[str, Any]]) -> dict[str, int]:
        """Token counts; the contents a request shares with the one before count as cached."""
        system, contents = request.get("systemInstruction"), request.get("contents", [])
        with self._lock:
            last_system, last_contents = self._last_prompt
            self._last_prompt = (system, contents)
        shared = 0
        while (
            system == last_system
            and shared < min(len(contents), len(last_contents))
            and contents[shared] == last_contents[shared]
        ):
            shared += 1
        system_tokens = tokens(system["parts"]) if system else 0
        prompt = system_tokens + sum(tokens(c["parts"]) for c in contents)
        cached = system_tokens + sum(tokens(c["parts"]) for c in contents[:shared])
        cached = cached if shared else 0
        candidates = tokens(answer)
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "cachedContentTokenCount": cached,
            "thoughtsTokenCount": THOUGHTS_TOKENS,
            "totalTokenCount": prompt + candidates + THOUGHTS_TOKENS,
        }

    def __enter__(self) -> "FakeGemini":
        # shutdown() waits for the loop's next poll: at the default 0.5 s, most of a test.
        serve = {"poll_interval": 0.02}
        threading.Thread(target=self.serve_forever, kwargs=serve, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeGemini
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.calls += 1
        self.server.paths.append(url.path)
        self.server.queries.append(parse_qs(url.query))
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        time.sleep(self.server.stall_seconds)
        if self.server.hang_up:
            self.close_connection = True
            return
        match = _METHOD_PATH.match(url.path)
        if match is None:
            self._error(404, f"{url.path} is not a method of the fake")
            return
        body = json.loads(raw)
        self.server.requests.append(body)
        streamed = match["method"] == "streamGenerateContent"
        if self.server.fail_with is not None:
            # The message stands for the prompt text real errors may echo.
            self._error(self.server.fail_with, "upstream exploded; your prompt was: ...")
        elif missing_signature(body):
            self._error(400, "Function call is missing a thought_signature in functionCall parts.")
        elif streamed and parse_qs(url.query).get("alt") != ["sse"]:
            self._error(400, "the fake streams Server-Sent Events only (alt=sse)")
        elif self.server.malform:
            self._malformed(streamed)
        elif streamed:
            self._stream(body, match["model"])
        else:
            self._json(200, self._whole(body, match["model"]))

    def _whole(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        parts, finish = self._answer(body)
        candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        return _response(model, candidate, self.server.usage(body, parts))

    def _stream(self, body: dict[str, Any], model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        parts, finish = self._answer(body)
        usage = self.server.usage(body, parts)
        # Text arrives in pieces; a function call comes whole, as Gemini sends them.
        words = [t for p in parts for t in re.findall(r"\S+\s*", p.get("text", ""))]
        chunks = [[{"text": t}] for t in words] or [[p] for p in parts] or [[]]
        written: list[dict[str, Any]] = []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            candidate: dict[str, Any] = {"index": 0}
            if chunk:
                candidate["content"] = {"parts": chunk, "role": "model"}
            if last:
                candidate["finishReason"] = finish
            # Each chunk's usage is the running total so far, as Gemini's are.
            written += chunk
            unwritten = usage["candidatesTokenCount"] - tokens(written)
            running = {**usage, "candidatesTokenCount": tokens(written)}
            running["totalTokenCount"] -= unwritten
            self._event(_response(model, candidate, running))
            if self.server.drop_stream and not last:
                break
        self.close_connection = True

    def _answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        if self.server.block_with is not None:
            return [], self.server.block_with
        call = function_call_for(body)
        if call is None:
            return [{"text": reply_to(body)}], "STOP"
        step = sum(1 for c in body["contents"] if c.get("role") == "model") + 1
        if self.server.with_call_ids:
            call = {"id": f"fc_fake_{step}", **call}
        return [{"functionCall": call, "thoughtSignature": signature_for(step)}], "STOP"

    def _malformed(self, streamed: bool) -> None:
        data = b'data: {"candidates": [\r\n\r\n' if streamed else b'{"candidates": ['
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if streamed else "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        name = STATUS_NAMES.get(status, "UNKNOWN")
        self._json(status, {"error": {"code": status, "message": message, "status": name}})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\r\n\r\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _response(model: str, candidate: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fake-response",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8082)
    port = parser.parse_args().port
    with FakeGemini(port) as server:
        print(f"fake Gemini endpoint at {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()

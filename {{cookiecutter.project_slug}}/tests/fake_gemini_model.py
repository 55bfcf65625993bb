"""What the fake Gemini model answers: its replies, its function calls, and its token counts.

Pure functions of a generateContent request's JSON; tests/fake_gemini.py serves them over HTTP.
"""

import base64
import json
from typing import Any

from tests.fake_openai import TOOL_LINE


def signature_for(step: int) -> str:
    """The thought signature the fake gives the function call of a step (base64, as the API's)."""
    return base64.b64encode(f"fake-signature-{step}".encode()).decode()


def reply_to(request: dict[str, Any]) -> str:
    """The fake model's answer: deterministic, and it shows what it was sent."""
    return f"fake reply to: {_user_text(request)}"


def function_call_for(request: dict[str, Any]) -> dict[str, Any] | None:
    """The next functionCall the request asks for, or None for a text reply.

    Like the echo provider: each `/tool NAME {json}` line of the last user text is one call,
    in order; a call is made only for a function the request declares.
    """
    contents = request.get("contents", [])
    start = _turn_start(contents)
    if start < 0:
        return None
    wanted = TOOL_LINE.findall(_user_text(request))
    done = sum(1 for c in contents[start + 1 :] for p in c["parts"] if "functionResponse" in p)
    offered = {
        declaration["name"]
        for tool in request.get("tools", [])
        for declaration in tool.get("functionDeclarations", [])
    }
    if done >= len(wanted) or wanted[done][0] not in offered:
        return None
    name, arguments = wanted[done]
    return {"name": name, "args": json.loads(arguments.strip() or "{}")}


def missing_signature(request: dict[str, Any]) -> bool:
    """Whether a step of the current turn came back without its thought signature.

    Gemini 3 refuses those with a 400: the first functionCall part of every model step
    after the turn's last user text must carry the thoughtSignature it was sent with.
    """
    contents = request.get("contents", [])
    for content in contents[_turn_start(contents) + 1 :]:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if content.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
            return True
    return False


def _turn_start(contents: list[dict[str, Any]]) -> int:
    """The index of the last user content with text (function responses are "user" too)."""
    for index in range(len(contents) - 1, -1, -1):
        content = contents[index]
        if content.get("role") == "user" and any("text" in p for p in content["parts"]):
            return index
    return -1


def _user_text(request: dict[str, Any]) -> str:
    contents = request.get("contents", [])
    start = _turn_start(contents)
    if start < 0:
        return ""
    return "".join(p.get("text", "") for p in contents[start]["parts"])


def tokens(parts: list[dict[str, Any]]) -> int:
    """The fake's token count: a word of a text part, or of any other part's JSON, is one."""
    return sum(len((p["text"] if "text" in p else json.dumps(p)).split()) for p in parts)

"""422 errors for what a request's models cannot check alone (a setting, another field)."""

from typing import Any


def field_error(kind: str, location: tuple[str | int, ...], message: str) -> dict[str, Any]:
    """One error naming a field of the body, shaped as FastAPI's own, so clients parse one
    format; raise RequestValidationError with a list of them."""
    return {"type": kind, "loc": ("body", *location), "msg": message}

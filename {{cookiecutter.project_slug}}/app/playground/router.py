"""Serves the playground's three files; included only when the playground is on."""

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"": "index.html", "app.js": "app.js", "style.css": "style.css"}
# Scripts and styles from this origin only, no inline code, nothing framed, no other host:
# model output is inserted as text, and a key pasted here can reach only this api.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/playground", tags=["playground"], include_in_schema=False)


@router.get("")
@router.get("/{name}")
async def playground(name: str = "") -> FileResponse:
    """The page, its script or its style sheet."""
    file = FILES.get(name)
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return FileResponse(STATIC / file, headers=HEADERS)

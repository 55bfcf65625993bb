"""Serves the playground's files, and its icon as the site's; included only when the
playground is on."""

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
FILES = {
    "": "index.html",
    "app.js": "app.js",
    "style.css": "style.css",
    "favicon.svg": "favicon.svg",
}
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

router = APIRouter(tags=["playground"], include_in_schema=False)


@router.get("/playground")
@router.get("/playground/{name}")
async def playground(name: str = "") -> FileResponse:
    """The page, its script, its style sheet or its icon."""
    file = FILES.get(name)
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return FileResponse(STATIC / file, headers=HEADERS)


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """What a browser asks every site for: the playground's icon (an SVG, which browsers
    take under this name too), not a 404 in its console."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers=HEADERS)

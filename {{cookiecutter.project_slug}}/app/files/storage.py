"""Bytes on disk: stored under generated ids, written atomically."""

import hashlib
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import anyio
from fastapi import UploadFile

CHUNK_BYTES = 64 * 1024
MAX_FILENAME_CHARS = 255
SPOOL_DIRECTORY = ".tmp"
# Far longer than any upload takes to write: a partial file this old has no writer.
STALE_PARTIAL_SECONDS = 600


class TooLargeError(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"file is larger than the limit of {max_bytes} bytes")


@dataclass(frozen=True, slots=True)
class Blob:
    id: uuid.UUID
    size_bytes: int
    sha256: str


def blob_path(directory: Path, file_id: uuid.UUID) -> Path:
    """Return where a file's bytes live: the id alone, so no client input reaches the path."""
    return directory / file_id.hex


def display_name(client_name: str | None) -> str:
    """Reduce a client's file name to a harmless display name (no directories or controls)."""
    name = PureWindowsPath(PurePosixPath(client_name or "").name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    return name[:MAX_FILENAME_CHARS] or "upload"


def spool_path(directory: Path) -> Path:
    """Return the temporary directory inside the uploads directory (the same volume)."""
    return directory / SPOOL_DIRECTORY


def prepare_spool(directory: Path) -> Path:
    """Create the temporary directory; remove what a crashed process left there."""
    spool = spool_path(directory)
    spool.mkdir(parents=True, exist_ok=True)
    # Only old leftovers: replicas share the volume, and another one may be mid-upload.
    cutoff = time.time() - STALE_PARTIAL_SECONDS
    for leftover in spool.iterdir():
        if leftover.is_file() and leftover.stat().st_mtime < cutoff:
            leftover.unlink(missing_ok=True)
    return spool


async def save_upload(upload: UploadFile, directory: Path, max_bytes: int) -> Blob:
    """Copy the upload into the directory, hashing it; nothing stays behind on failure."""
    blob_id = uuid.uuid4()
    final = blob_path(directory, blob_id)
    # Written in the temporary directory, then renamed into place: readers never see part
    # of a file, and a crash leaves its debris where start-up clears it.
    partial = spool_path(directory) / f"{blob_id.hex}.part"
    digest, size = hashlib.sha256(), 0
    try:
        async with await anyio.open_file(partial, "wb") as out:
            while chunk := await upload.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(max_bytes)
                digest.update(chunk)
                await out.write(chunk)
        await anyio.Path(partial).rename(final)
    finally:
        await anyio.Path(partial).unlink(missing_ok=True)
    return Blob(blob_id, size, digest.hexdigest())


async def read_text(path: Path, max_chars: int) -> str:
    """Read the start of a text file for the model's context."""
    async with await anyio.open_file(path, "rb") as source:
        # UTF-8 needs at most 4 bytes a character.
        head = await source.read(max_chars * 4)
    return head.decode("utf-8", errors="replace")[:max_chars]

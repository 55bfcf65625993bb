"""File operations."""

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import anyio
from fastapi import UploadFile
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config.sections import UploadsConfig
from app.files import storage
from app.files.models import StoredFile

# Namespaces the per-owner quota lock among the database's advisory locks.
QUOTA_LOCK = 0x71756F74
TEXT_TYPES = frozenset({"application/json", "application/xml", "application/x-yaml"})


class UnsupportedTypeError(Exception):
    def __init__(self, content_type: str, allowed: Iterable[str]) -> None:
        super().__init__(
            f"content type {content_type or '(none)'!r} is not allowed; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


class QuotaExceededError(Exception):
    def __init__(self, *, quota: int, used: int, size: int) -> None:
        super().__init__(
            f"storage quota of {quota} bytes per key exceeded: {used} bytes stored, "
            f"this file has {size}; make room with DELETE /v1/files/<id>"
        )


def is_text(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in TEXT_TYPES


async def store_file(
    *,
    session: AsyncSession,
    owner: str,
    upload: UploadFile,
    config: UploadsConfig,
    directory: Path,
) -> StoredFile:
    """Save the bytes, then record them within the owner's quota; else remove the bytes."""
    # The declared type without parameters, lower-cased.
    content_type = (upload.content_type or "").split(";", 1)[0].strip().lower()
    if content_type not in config.allowed_content_types:
        raise UnsupportedTypeError(content_type, config.allowed_content_types)
    blob = await storage.save_upload(upload, directory, config.max_bytes)
    record = StoredFile(
        id=blob.id,
        owner=owner,
        filename=storage.display_name(upload.filename),
        content_type=content_type,
        size_bytes=blob.size_bytes,
        sha256=blob.sha256,
    )
    try:
        await _reserve(session, owner, blob.size_bytes, config.max_total_bytes_per_key)
        session.add(record)
        await session.commit()
    except BaseException:
        await session.rollback()
        storage.blob_path(directory, blob.id).unlink(missing_ok=True)
        raise
    return record


async def _reserve(session: AsyncSession, owner: str, size: int, quota: int) -> None:
    """Check the quota under a lock the owner's other uploads wait on until commit: without
    it, two concurrent uploads could each see room for themselves and both land."""
    await session.execute(select(func.pg_advisory_xact_lock(QUOTA_LOCK, func.hashtext(owner))))
    total = select(func.sum(StoredFile.size_bytes)).where(StoredFile.owner == owner)
    used = await session.scalar(total) or 0  # no files: NULL
    if used + size > quota:
        raise QuotaExceededError(quota=quota, used=used, size=size)


async def delete_file(*, session: AsyncSession, record: StoredFile, directory: Path) -> None:
    # The row, then the bytes: a crash in between leaves an orphan blob, never a row that
    # cannot download.
    await session.delete(record)
    await session.commit()
    await anyio.Path(storage.blob_path(directory, record.id)).unlink(missing_ok=True)


async def get_file(*, session: AsyncSession, owner: str, file_id: uuid.UUID) -> StoredFile | None:
    """Return the owner's file; another owner's is as absent as an unknown id."""
    return await session.scalar(
        select(StoredFile).where(StoredFile.id == file_id, StoredFile.owner == owner)
    )


async def get_files(
    *, session: AsyncSession, owner: str, file_ids: Sequence[uuid.UUID]
) -> list[StoredFile]:
    """Return the owner's files in the order asked for; other ids are simply absent."""
    if not file_ids:
        return []
    rows = await session.scalars(
        select(StoredFile).where(StoredFile.id.in_(file_ids), StoredFile.owner == owner)
    )
    found = {row.id: row for row in rows}
    return [found[file_id] for file_id in file_ids if file_id in found]

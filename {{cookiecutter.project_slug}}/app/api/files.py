"""File endpoints: upload, download, delete."""

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile, status
from fastapi.responses import FileResponse

from app.deps import OwnedFile, OwnerDep, SessionDep, SettingsDep
from app.files import service, storage
from app.files.schemas import FileOut

router = APIRouter(prefix="/files", tags=["files"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def upload_file(
    file: Annotated[UploadFile, File(description="The file to store")],
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
) -> FileOut:
    """Store an uploaded file under a generated id."""
    try:
        record = await service.store_file(
            session=session,
            owner=owner,
            upload=file,
            config=settings.config.uploads,
            directory=settings.uploads_dir,
        )
    except (storage.TooLargeError, service.QuotaExceededError) as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except service.UnsupportedTypeError as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    return FileOut.model_validate(record)


@router.get("/{file_id}", response_class=FileResponse)
async def download_file(record: OwnedFile, settings: SettingsDep) -> FileResponse:
    """Download a stored file."""
    return FileResponse(
        storage.blob_path(settings.uploads_dir, record.id),
        media_type=record.content_type,
        filename=record.filename,
    )


@router.delete("/{file_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(record: OwnedFile, session: SessionDep, settings: SettingsDep) -> None:
    """Delete a stored file; messages that named it keep their text."""
    await service.delete_file(session=session, record=record, directory=settings.uploads_dir)

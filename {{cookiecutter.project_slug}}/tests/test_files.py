import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.config.settings import Settings
from app.files import storage

SYSTEM_PROMPT = "You are a helpful assistant."


def _names(directory: Path) -> list[str]:
    """What is stored in a directory: its temporary directory must be empty and is left out."""
    spool = storage.spool_path(directory)
    assert not spool.exists() or list(spool.iterdir()) == []
    return sorted(path.name for path in directory.iterdir() if path != spool)


async def _upload(
    client: AsyncClient, name: str, data: bytes, content_type: str = "text/plain"
) -> dict[str, object]:
    response = await client.post("/v1/files", files={"file": (name, data, content_type)})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_upload_then_download_returns_the_same_bytes(
    client: AsyncClient, settings: Settings
) -> None:
    data = b"line one\nline two\n"

    meta = await _upload(client, "notes.txt", data)
    download = await client.get(f"/v1/files/{meta['id']}")

    assert meta["size_bytes"] == len(data)
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert download.status_code == 200
    assert download.content == data
    assert 'filename="notes.txt"' in download.headers["content-disposition"]
    assert _names(settings.uploads_dir) == [str(meta["id"]).replace("-", "")]


@pytest.mark.parametrize(
    ("client_name", "shown_as"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/absolute/path.txt", "path.txt"),
        ("..", "upload"),
    ],
    ids=["dot-dot", "backslashes", "absolute", "only-dots"],
)
async def test_path_like_names_never_reach_the_file_system(
    client: AsyncClient, settings: Settings, tmp_path: Path, client_name: str, shown_as: str
) -> None:
    meta = await _upload(client, client_name, b"harmless")

    assert meta["filename"] == shown_as
    assert _names(settings.uploads_dir) == [str(meta["id"]).replace("-", "")]
    assert _names(tmp_path) == ["logs", "uploads"]


@pytest.mark.parametrize("config_overrides", [{"uploads": {"max_bytes": 1024}}])
async def test_too_large_upload_gets_413_and_leaves_nothing(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/v1/files", files={"file": ("big.txt", b"x" * 1025, "text/plain")}
    )

    assert response.status_code == 413
    assert "limit of 1024 bytes" in response.json()["detail"]
    assert _names(settings.uploads_dir) == []


@pytest.mark.parametrize("config_overrides", [{"uploads": {"max_bytes": 1024}}])
async def test_declared_huge_body_is_refused_before_reading(client: AsyncClient) -> None:
    response = await client.post(
        "/v1/files",
        content=b"--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Content-Length": "10000000"},
    )

    assert response.status_code == 413
    assert "request body is larger than the limit" in response.json()["detail"]


@pytest.mark.parametrize("config_overrides", [{"uploads": {"max_bytes": 1024}}])
async def test_streamed_huge_body_without_length_is_refused(client: AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield (
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
        )
        for _ in range(64):
            yield b"x" * 1024

    response = await client.post(
        "/v1/files",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["application/x-msdownload", "text/html", ""])
async def test_disallowed_content_type_gets_415(
    client: AsyncClient, settings: Settings, content_type: str
) -> None:
    response = await client.post("/v1/files", files={"file": ("tool.exe", b"MZ...", content_type)})

    assert response.status_code == 415
    assert "is not allowed; allowed:" in response.json()["detail"]
    assert _names(settings.uploads_dir) == []


async def test_upload_without_a_file_field_gets_422(client: AsyncClient) -> None:
    response = await client.post("/v1/files", data={"not_file": "x"})

    assert response.status_code == 422


async def test_unknown_file_gets_404(client: AsyncClient) -> None:
    response = await client.get("/v1/files/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404


async def test_text_file_content_reaches_the_model(client: AsyncClient) -> None:
    text_file = await _upload(client, "facts.md", b"The sky is green here.", "text/markdown")
    image = await _upload(client, "pic.png", b"\x89PNG....", "image/png")
    conversation = (await client.post("/v1/conversations", json={})).json()

    response = await client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "Summarise", "file_ids": [text_file["id"], image["id"]]},
    )

    reply = response.json()["assistant_message"]["content"]
    assert response.status_code == 201
    assert "--- file facts.md ---\nThe sky is green here." in reply
    assert "--- file pic.png (image/png, not text) ---" in reply
    assert response.json()["user_message"]["file_ids"] == [text_file["id"], image["id"]]


async def test_delete_removes_the_row_and_the_bytes(
    client: AsyncClient, settings: Settings
) -> None:
    meta = await _upload(client, "old.txt", b"to be removed")
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "see file", "file_ids": [meta["id"]]},
    )

    deleted = await client.delete(f"/v1/files/{meta['id']}")
    download = await client.get(f"/v1/files/{meta['id']}")
    again = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "still here?"}
    )

    assert deleted.status_code == 204
    assert download.status_code == 404
    assert _names(settings.uploads_dir) == []
    # The message that named the file keeps its text; the model no longer sees the file.
    assert again.status_code == 201
    assert "to be removed" not in again.json()["assistant_message"]["content"]

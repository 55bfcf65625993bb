"""Every bound on what a client can make the api hold: sizes, time, in flight, per key."""

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from app.config.sections import UploadsConfig
from app.config.settings import Settings
from app.files import storage
from app.main import create_app
from tests.conftest import OTHER_API_KEY
from tests.metrics import admission_refusals, sample, scrape

AS_OTHER = {"Authorization": f"Bearer {OTHER_API_KEY}"}
MULTIPART_HEAD = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
)
MULTIPART_TAIL = b"\r\n--x--\r\n"


async def _upload(client: AsyncClient, size: int, **kwargs: Any) -> Any:
    return await client.post(
        "/v1/files", files={"file": ("f.txt", b"x" * size, "text/plain")}, **kwargs
    )


def _stored(settings: Settings) -> list[Path]:
    spool = storage.spool_path(settings.uploads_dir)
    return [p for p in [*settings.uploads_dir.iterdir(), *spool.iterdir()] if p != spool]


@pytest.mark.parametrize(
    "config_overrides", [{"uploads": {"max_bytes": 1000, "max_total_bytes_per_key": 2500}}]
)
async def test_uploads_past_the_quota_get_413_naming_it(
    client: AsyncClient, settings: Settings
) -> None:
    first, second = await _upload(client, 1000), await _upload(client, 1000)
    over = await _upload(client, 600)
    other_key = await _upload(client, 1000, headers=AS_OTHER)
    files_before_delete = len(_stored(settings))
    await client.delete(f"/v1/files/{first.json()['id']}")
    after_delete = await _upload(client, 600)

    assert (first.status_code, second.status_code) == (201, 201)
    assert over.status_code == 413
    assert over.json()["detail"].startswith(
        "storage quota of 2500 bytes per key exceeded: 2000 bytes stored, this file has 600"
    )
    assert other_key.status_code == 201
    assert files_before_delete == 3
    assert after_delete.status_code == 201


def test_a_quota_smaller_than_one_file_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="max_total_bytes_per_key must be at least max_bytes"):
        UploadsConfig.model_validate({"max_bytes": 10, "max_total_bytes_per_key": 9})


@pytest.mark.parametrize("config_overrides", [{"requests": {"max_json_bytes": 1024}}])
async def test_json_bodies_have_their_own_smaller_limit(client: AsyncClient) -> None:
    response = await client.post("/v1/conversations", json={"title": "x" * 2000})
    upload = await _upload(client, 4000)

    assert response.status_code == 413
    assert response.json()["detail"] == "request body is larger than the limit of 1024 bytes"
    assert upload.status_code == 201
    assert admission_refusals(await scrape(client)) == {"too_large": 1}


class SlowBody:
    """A request body that stops after its first chunk until released."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first, self.rest = first, rest
        self.reading = asyncio.Event()  # the api has taken the first chunk
        self.release = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        self.reading.set()
        await self.release.wait()
        yield self.rest


def _slow_upload() -> SlowBody:
    return SlowBody(MULTIPART_HEAD + b"first part ", b"and the rest" + MULTIPART_TAIL)


@pytest.mark.parametrize("config_overrides", [{"uploads": {"max_concurrent": 1}}])
async def test_uploads_past_the_concurrency_bound_get_503_with_retry_after(
    client: AsyncClient,
) -> None:
    body = _slow_upload()
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    slow = asyncio.create_task(client.post("/v1/files", content=body, headers=headers))
    await body.reading.wait()  # the slow upload holds the only slot

    refused = await _upload(client, 10)
    conversation = await client.post("/v1/conversations", json={"title": "not an upload"})
    body.release.set()
    admitted = await slow
    after = await _upload(client, 10)

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["detail"] == "too many uploads in progress (limit 1); retry shortly"
    assert conversation.status_code == 201
    assert admitted.status_code == 201
    assert after.status_code == 201
    assert admission_refusals(await scrape(client)) == {"uploads_in_flight": 1}


@pytest.mark.parametrize(
    "config_overrides", [{"uploads": {"max_concurrent": 4, "max_concurrent_per_key": 1}}]
)
async def test_one_key_cannot_take_every_upload_slot(client: AsyncClient) -> None:
    body = _slow_upload()
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    slow = asyncio.create_task(client.post("/v1/files", content=body, headers=headers))
    await body.reading.wait()  # the key's only upload slot is taken

    same_key = await _upload(client, 10)
    other_key = await _upload(client, 10, headers=AS_OTHER)
    body.release.set()
    admitted = await slow
    after = await _upload(client, 10)

    assert same_key.status_code == 429
    assert same_key.headers["retry-after"] == "1"
    assert same_key.json()["detail"] == (
        "too many uploads of this key in progress (limit 1); retry shortly"
    )
    assert other_key.status_code == 201
    assert (admitted.status_code, after.status_code) == (201, 201)
    assert admission_refusals(await scrape(client)) == {"key_uploads_in_flight": 1}


@pytest.mark.parametrize("config_overrides", [{"uploads": {"max_concurrent": 1}}])
async def test_a_body_without_a_valid_key_is_refused_before_it_is_read(
    client: AsyncClient,
) -> None:
    never_sent = _slow_upload()  # never released: the answer must not wait for the body
    headers = {"Content-Type": "multipart/form-data; boundary=x", "Authorization": "Bearer nope"}

    refused = await client.post("/v1/files", content=never_sent, headers=headers)
    after = await _upload(client, 10)  # the only upload slot is still free

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert not never_sent.reading.is_set()
    assert after.status_code == 201


@pytest.mark.parametrize("config_overrides", [{"requests": {"max_bodies_in_flight": 1}}])
async def test_bodies_past_the_in_flight_bound_get_503(client: AsyncClient) -> None:
    body = SlowBody(b'{"title": "sl', b'ow"}')
    headers = {"Content-Type": "application/json"}
    slow = asyncio.create_task(client.post("/v1/conversations", content=body, headers=headers))
    await body.reading.wait()

    refused = await client.post("/v1/conversations", json={"title": "fast"})
    listed = await client.get("/v1/conversations")  # no body: not counted
    body.release.set()
    admitted = await slow

    assert refused.status_code == 503
    assert "too many requests with a body in progress (limit 1)" in refused.json()["detail"]
    assert listed.status_code == 200
    assert admitted.status_code == 201
    assert admission_refusals(await scrape(client)) == {"bodies_in_flight": 1}


def _slow_create(client: AsyncClient) -> tuple[SlowBody, "asyncio.Task[Any]"]:
    """A create whose body stops after its first chunk: it holds a body slot until released."""
    body = SlowBody(b'{"title": "sl', b'ow"}')
    headers = {"Content-Type": "application/json"}
    return body, asyncio.create_task(
        client.post("/v1/conversations", content=body, headers=headers)
    )


async def _waiting(client: AsyncClient, count: int) -> None:
    """Until /metrics shows `count` requests waiting for a body slot."""
    while True:
        if sample(await scrape(client), "admission_waiting") == count:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "config_overrides", [{"requests": {"max_bodies_in_flight": 1, "max_wait_seconds": 10}}]
)
async def test_a_request_finding_every_body_slot_taken_is_admitted_when_one_frees(
    client: AsyncClient,
) -> None:
    body, slow = _slow_create(client)
    await body.reading.wait()
    waiting = asyncio.create_task(client.post("/v1/conversations", json={"title": "next"}))
    await _waiting(client, 1)
    body.release.set()
    first, second = await slow, await waiting

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["title"] == "next"
    exposition = await scrape(client)
    assert admission_refusals(exposition) == {}
    assert sample(exposition, "admission_waiting") == 0


@pytest.mark.parametrize(
    "config_overrides", [{"requests": {"max_bodies_in_flight": 1, "max_wait_seconds": 0.2}}]
)
async def test_a_request_waiting_past_the_bound_gets_503_with_retry_after(
    client: AsyncClient,
) -> None:
    body, slow = _slow_create(client)
    await body.reading.wait()

    refused = await client.post("/v1/conversations", json={"title": "fast"})
    body.release.set()
    admitted = await slow

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "too many requests with a body in progress (limit 1)" in refused.json()["detail"]
    assert admitted.status_code == 201
    exposition = await scrape(client)
    assert admission_refusals(exposition) == {"bodies_in_flight": 1}
    assert sample(exposition, "admission_waiting") == 0


@pytest.mark.parametrize(
    "config_overrides",
    [{"requests": {"max_bodies_in_flight": 1, "max_waiting": 1, "max_wait_seconds": 10}}],
)
async def test_past_max_waiting_a_request_is_refused_without_waiting(
    client: AsyncClient,
) -> None:
    body, slow = _slow_create(client)
    await body.reading.wait()
    waiting = asyncio.create_task(client.post("/v1/conversations", json={"title": "waits"}))
    await _waiting(client, 1)
    # Had it waited too, it would be answered only after the one ahead of it in line.
    over = asyncio.create_task(client.post("/v1/conversations", json={"title": "over"}))
    done, _ = await asyncio.wait({waiting, over}, return_when=asyncio.FIRST_COMPLETED)
    body.release.set()

    assert done == {over}
    assert over.result().status_code == 503
    assert over.result().headers["retry-after"] == "1"
    assert (await waiting).status_code == 201
    assert (await slow).status_code == 201


@pytest.mark.parametrize("config_overrides", [{"requests": {"body_timeout_seconds": 0.5}}])
async def test_a_body_slower_than_the_timeout_gets_408_and_frees_its_slot(
    client: AsyncClient, settings: Settings
) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=x"}

    started = time.monotonic()
    response = await client.post("/v1/files", content=_slow_upload(), headers=headers)
    elapsed = time.monotonic() - started
    after = await _upload(client, 10)

    assert response.status_code == 408
    assert response.json()["detail"] == "request body not received within 0.5 s"
    assert elapsed < 5
    assert after.status_code == 201
    assert len(_stored(settings)) == 1
    assert admission_refusals(await scrape(client)) == {"body_timeout": 1}


def test_uploads_spool_in_the_uploads_directory_and_start_up_clears_old_leftovers(
    settings: Settings,
) -> None:
    spool = storage.spool_path(settings.uploads_dir)
    spool.mkdir(parents=True)
    stale, fresh = spool / "dead.part", spool / "live.part"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"another replica's upload")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    create_app(settings)

    assert tempfile.gettempdir() == str(spool)
    assert sorted(p.name for p in spool.iterdir()) == ["live.part"]

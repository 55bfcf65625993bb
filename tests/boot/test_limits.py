"""Bounds that need a real server: the storage quota under concurrent uploads of one key, a
client that sends one byte a second, and no debris after uploads that fail."""

import contextlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.harness.api import Api, api_env, config_file, new_secret, running_api
from tests.harness.postgres_server import PostgresServer
from tests.harness.redis_server import RedisServer
from tests.project import Project

FILE_BYTES = 100_000
QUOTA_FILES = 5
BODY_TIMEOUT_SECONDS = 3


@dataclass
class Booted:
    api: Api
    key: str
    uploads: Path

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def upload(self, data: bytes, *, key: str | None = None) -> httpx.Response:
        """Upload with the first key unless another is given."""
        return httpx.post(
            f"{self.base_url}/v1/files",
            files={"file": ("f.txt", data, "text/plain")},
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=30,
        )

    def debris(self) -> list[str]:
        """Files in the uploads volume's temporary directory."""
        return sorted(path.name for path in (self.uploads / ".tmp").iterdir())

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.uploads.iterdir() if p.name != ".tmp")


@pytest.fixture(scope="module")
def service(
    default_project: Project,
    postgres: PostgresServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Booted]:
    work = tmp_path_factory.mktemp("limits-api")
    config = config_file(
        default_project,
        work / "config.yaml",
        {
            "uploads": {
                "max_bytes": FILE_BYTES,
                "max_total_bytes_per_key": QUOTA_FILES * FILE_BYTES,
                "max_concurrent": 16,
                "max_concurrent_per_key": 16,  # the quota, not the slots, must refuse here
            },
            "requests": {"body_timeout_seconds": BODY_TIMEOUT_SECONDS},
            "rate_limit": {"requests": 10_000},
        },
    )
    keys = [new_secret(), new_secret()]
    env = api_env(
        work,
        database_url=postgres.create_database("limits"),
        redis_url=redis_server.url,
        CONFIG_FILE=str(config),
        API_KEYS=",".join(keys),
    )
    with running_api(default_project, env, work / "api.log") as api:
        yield Booted(api, keys[0], work / "uploads")


def test_concurrent_uploads_of_one_key_never_overshoot_its_quota(
    service: Booted, postgres: PostgresServer
) -> None:
    attempts = 3 * QUOTA_FILES

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        responses = list(pool.map(lambda _: service.upload(b"q" * FILE_BYTES), range(attempts)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * QUOTA_FILES + [413] * (attempts - QUOTA_FILES)
    refusal = next(r for r in responses if r.status_code == 413).json()["detail"]
    assert refusal.startswith(f"storage quota of {QUOTA_FILES * FILE_BYTES} bytes per key")
    stored_bytes = postgres.query("SELECT sum(size_bytes) FROM files", database="limits")
    assert int(stored_bytes) == QUOTA_FILES * FILE_BYTES
    assert len(service.stored()) == QUOTA_FILES
    assert service.debris() == []
    assert service.upload(b"one more").status_code == 413
    assert service.upload(b"another key's first", key=_second_key(service)).status_code == 201


def _raw_upload(base_url: str, key: str, declared: int) -> socket.socket:
    """Open a connection and send an upload's headers; the caller sends the body."""
    url = urlsplit(base_url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(
        (
            "POST /v1/files HTTP/1.1\r\n"
            f"Host: {url.hostname}\r\n"
            f"Authorization: Bearer {key}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        + b'--x\r\nContent-Disposition: form-data; name="file"; filename="s.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    return connection


def test_a_client_sending_one_byte_a_second_gets_408_and_frees_its_slot(
    service: Booted,
) -> None:
    connection = _raw_upload(service.base_url, service.key, declared=FILE_BYTES)
    started = time.monotonic()
    answer = b""
    with connection:
        for _ in range(3 * BODY_TIMEOUT_SECONDS):
            try:
                connection.sendall(b"z")
            except OSError:
                break
            connection.settimeout(1.0)
            try:
                answer = connection.recv(65536)
            except TimeoutError:
                continue
            break
        elapsed = time.monotonic() - started
        # The status line may come in a segment of its own: read on until the server closes
        # (a reset is a close too: our last byte may be unread on its side).
        connection.settimeout(5.0)
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                answer += chunk

    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"request body not received within 3 s" in answer
    assert BODY_TIMEOUT_SECONDS - 1 <= elapsed <= BODY_TIMEOUT_SECONDS + 3
    assert service.debris() == []


def test_uploads_that_fail_leave_no_temporary_files(service: Booted) -> None:
    # Past max_bytes but inside the body limit (which allows for multipart framing): the
    # bytes are half written to the temporary directory when the size check fails.
    too_large = service.upload(b"x" * (FILE_BYTES + 1), key=_second_key(service))
    # A client that goes away halfway through its body.
    connection = _raw_upload(service.base_url, service.key, declared=FILE_BYTES)
    connection.sendall(b"y" * (FILE_BYTES // 2))
    connection.close()
    deadline = time.monotonic() + 10
    while service.debris() and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the disconnect on its next read

    assert too_large.status_code == 413
    assert service.debris() == []
    assert httpx.get(f"{service.base_url}/health").status_code == 200


def _second_key(service: Booted) -> str:
    """The second key: the first one uses its quota up in the first test."""
    return service.api.env["API_KEYS"].split(",")[1]

"""The default stack under a flood of uploads: the api bounds what it holds and stays up."""

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import yaml

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness import docker as lab
from tests.harness.stack import Stack

CLIENTS = 60
MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2}

# The default answers only: one stack is enough to show the bound.
pytestmark = FIRST_VARIANT_ONLY


class Watcher:
    """Samples the api's memory (docker stats), /health and Docker's verdict during the flood.

    /health gives each dependency check 1 s (health.timeout_seconds); with both cores busy
    carrying 600 MB, one late check answers 503, as designed. What a user would notice is
    Docker's verdict, which needs three failed checks in a row to turn "unhealthy".
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.memory: list[int] = []
        self.health: list[str] = []  # every /health answer: code and status, or the error
        self.verdicts: list[str] = []  # Docker's health status of the api container
        self._stats = subprocess.Popen(
            ["docker", "stats", "--format", "{{.MemUsage}}", stack.container("api")],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_stats, daemon=True),
            threading.Thread(target=self._poll_health, daemon=True),
            threading.Thread(target=self._poll_verdict, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stats(self) -> None:
        assert self._stats.stdout is not None
        for line in self._stats.stdout:
            match = re.search(r"([\d.]+)\s*([KMG]iB|[kM]B|B)\s*/", line)
            if match:
                self.memory.append(int(float(match[1]) * UNITS[match[2]]))

    def _poll_health(self) -> None:
        while not self._done.wait(0.5):
            try:
                response = httpx.get(f"http://127.0.0.1:{self.stack.port}/health", timeout=10)
            except httpx.TransportError as exc:
                self.health.append(f"no answer: {exc!r}")
            else:
                self.health.append(f"{response.status_code} {response.json()['status']}")

    def _poll_verdict(self) -> None:
        while not self._done.wait(0.5):
            self.verdicts.append(self.stack.inspect("api")["State"]["Health"]["Status"])

    def stop(self) -> None:
        self._done.set()
        self._stats.kill()  # docker stats of this engine ignores SIGTERM
        self._stats.wait(timeout=10)
        assert self._stats.stdout is not None
        self._stats.stdout.close()
        for thread in self._threads:
            thread.join(timeout=15)


def _upload(stack: Stack, data: bytes) -> httpx.Response | str:
    try:
        with stack.client() as client:
            client.timeout = httpx.Timeout(180.0)
            return client.post("/v1/files", files={"file": ("big.txt", data, "text/plain")})
    except httpx.TransportError as exc:
        return f"{type(exc).__name__}: {exc}"


def test_concurrent_uploads_of_the_largest_size_never_exhaust_the_api(stack: Stack) -> None:
    config = yaml.safe_load((stack.project.path / "config" / "config.yaml").read_text())
    data = b"u" * config["uploads"]["max_bytes"]
    watcher = Watcher(stack)
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(lambda _: _upload(stack, data), range(CLIENTS)))
    finally:
        watcher.stop()
    state = stack.inspect("api")
    debris = stack.read_volume("uploads", "find", "/v/.tmp", "-type", "f").split()
    stored = stack.read_volume("uploads", "find", "/v", "-maxdepth", "1", "-type", "f").split()

    lost = [result for result in results if isinstance(result, str)]
    assert lost == []
    responses = [result for result in results if isinstance(result, httpx.Response)]
    statuses = sorted({response.status_code for response in responses})
    assert set(statuses) <= {201, 429, 503}, statuses
    refused = [response for response in responses if response.status_code != 201]
    assert all(int(response.headers["retry-after"]) >= 1 for response in refused)
    created = [response for response in responses if response.status_code == 201]
    # One key: its own bound (uploads.max_concurrent_per_key) is the first to refuse.
    assert len(created) >= config["uploads"]["max_concurrent_per_key"]
    assert state["State"]["OOMKilled"] is False
    assert state["RestartCount"] == 0
    assert watcher.memory, "docker stats gave no sample"
    assert max(watcher.memory) < MEMORY_LIMIT_BYTES
    assert watcher.health
    assert set(watcher.health) <= {"200 healthy", "503 unhealthy"}, watcher.health
    assert watcher.verdicts
    assert set(watcher.verdicts) == {"healthy"}
    assert debris == []
    assert len(stored) == len(created)
    lab.wait_until_healthy(stack.container("api"), timeout=30)

"""A real, password-protected Redis (or Valkey) on a free loopback port, run as our child."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import servers
from .closing import Closing
from .environment import free_port
from .servers import ServerUnavailable


def redis_executables() -> tuple[str, str | None]:
    """Return the paths of the server and (when installed) the CLI: Redis, else Valkey."""
    for server_name, cli_name in (("redis-server", "redis-cli"), ("valkey-server", "valkey-cli")):
        if server := shutil.which(server_name):
            return server, shutil.which(cli_name)
    raise ServerUnavailable(
        "Redis server not found: neither redis-server nor valkey-server is on PATH"
        " (apt-get install redis-server)"
    )


@dataclass
class RedisServer(Closing):
    """A password-protected, non-persistent Redis on 127.0.0.1:port, run as our child process."""

    port: int
    password: str
    directory: Path
    executable: str
    cli_executable: str | None = None
    host: str = servers.HOST
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    @property
    def url(self) -> str:
        """Return `redis://:password@127.0.0.1:port/0`."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """Return the URL of another logical database number."""
        return f"redis://:{self.password}@{self.host}:{self.port}/{db}"

    def is_running(self) -> bool:
        """Tell whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server on its port and wait (bounded) until it answers PING."""
        if self.is_running():
            return
        self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [self.executable, *self._arguments()],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        self._wait_until_ready()

    def stop(self) -> None:
        """Terminate the server and wait for it, so that the port is closed afterwards."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=servers.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def ping(self) -> bool:
        """Tell whether the server answers AUTH + PING over a raw socket (no client library)."""
        request = f"AUTH {self.password}\r\nPING\r\n".encode()
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(request)
                reply = b""
                while reply.count(b"\r\n") < 2 and (chunk := sock.recv(1024)):
                    reply += chunk
        except OSError:
            return False
        return reply == b"+OK\r\n+PONG\r\n"

    def cli(self, *arguments: str) -> str:
        """Run redis-cli against this server and return its output."""
        if self.cli_executable is None:
            raise ServerUnavailable("redis-cli not found (apt-get install redis-tools)")
        command = [self.cli_executable, "-h", self.host, "-p", str(self.port), *arguments]
        # REDISCLI_AUTH keeps the password out of argv and avoids redis-cli's warning.
        env = {**os.environ, "REDISCLI_AUTH": self.password}
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout.strip()

    def _arguments(self) -> list[str]:
        # No RDB snapshots and no AOF: nothing outlives the test, and shutdown stays fast.
        return [
            "--port", str(self.port),
            "--bind", self.host,
            "--requirepass", self.password,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
        ]  # fmt: skip

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + servers.READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                self._fail(f"redis-server exited with code {self._process.returncode}")
            if self.ping():
                return
            time.sleep(0.05)
        self._fail(f"redis-server did not answer PING within {servers.READY_TIMEOUT:.0f} s")

    def _fail(self, message: str) -> None:
        self.stop()
        raise servers.ServerStartError(
            f"{message}\n--- {self.log_file} ---\n{servers.log_tail(self.log_file)}"
        )


def start_redis(base_dir: Path) -> RedisServer:
    """Start and return a fresh Redis under base_dir; use it as a context manager.

    Raises ServerUnavailable when redis-server is missing and ServerStartError when the
    server does not come up.
    """
    executable, cli_executable = redis_executables()
    base_dir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(
        port=free_port(),
        password=servers.new_password(),
        directory=Path(tempfile.mkdtemp(prefix="redis-", dir=base_dir)),
        executable=executable,
        cli_executable=cli_executable,
    )
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server

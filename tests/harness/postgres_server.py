"""A real PostgreSQL on a free loopback port, run from the machine's binaries (initdb, pg_ctl)."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .closing import Closing
from .environment import free_port
from .servers import (
    HOST,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    ServerStartError,
    ServerUnavailable,
    log_tail,
    new_password,
)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def postgres_bindir() -> Path:
    """Return the directory holding initdb, pg_ctl and psql, preferring the newest version."""
    for candidate in _postgres_bindir_candidates():
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres", "psql")):
            return candidate
    raise ServerUnavailable("PostgreSQL server binaries not found (apt-get install postgresql)")


def _postgres_bindir_candidates() -> list[Path]:
    # pg_config may come from libpq-dev alone (no server), so the Debian layout is checked too.
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    debian = [Path(path) for path in glob.glob("/usr/lib/postgresql/*/bin")]
    debian.sort(key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else -1)
    return candidates + debian[::-1]


def _postgres_account() -> pwd.struct_passwd | None:
    """Return the account to run the server as: `postgres` under root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    # PostgreSQL refuses to run as root; Debian's postgresql package creates this user.
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "running as root needs the 'postgres' system user (apt-get install postgresql)"
        ) from None
    if shutil.which("runuser") is None:
        raise ServerUnavailable("runuser not found (apt-get install util-linux)")
    return account


def _reachable_by(path: Path, account: pwd.struct_passwd) -> bool:
    """Tell whether `account` may traverse every directory down to `path` (ignoring ACLs)."""
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _postgres_directory(base_dir: Path, account: pwd.struct_passwd | None) -> Path:
    base_dir.mkdir(parents=True, exist_ok=True)
    parent = base_dir.resolve()
    if account is not None and not _reachable_by(parent, account):
        # pytest's tmp_path under /tmp/pytest-of-root is 0700: the postgres user cannot enter.
        parent = Path(tempfile.gettempdir())
    directory = Path(tempfile.mkdtemp(prefix="postgres-", dir=parent))
    if account is not None:
        os.chown(directory, account.pw_uid, account.pw_gid)
    return directory


@dataclass
class PostgresServer(Closing):
    """A private PostgreSQL cluster on 127.0.0.1:port with a password-authenticated superuser."""

    port: int
    user: str
    password: str
    database: str
    directory: Path
    bindir: Path
    account: pwd.struct_passwd | None = None
    host: str = HOST

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        """Return `postgresql://user:password@127.0.0.1:port/database`."""
        return self.url_for(self.database)

    def url_for(self, database: str, *, scheme: str = "postgresql") -> str:
        """Return the URL of another database, e.g. scheme="postgresql+asyncpg"."""
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def is_running(self) -> bool:
        """Tell whether the postmaster is alive (a stale pid file does not count)."""
        return self._pg_ctl(["status"], check=False) == 0

    def initdb(self) -> None:
        """Create the cluster with the superuser and password (scram-sha-256 everywhere)."""
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        self._give_to_server(password_file)
        arguments = ["-D", str(self.data_dir), "-U", self.user, f"--pwfile={password_file}"]
        arguments += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"]
        # --no-sync: the cluster is thrown away after the test, so skip the fsync of every file.
        try:
            self._run_server_tool("initdb", [*arguments, "--no-sync"])
        finally:
            password_file.unlink()

    def start(self) -> None:
        """Start the cluster on its port and wait (bounded) until it accepts connections."""
        if self.is_running():
            return
        # No Unix socket: clients use TCP, and a socket path under a deep tmp dir can exceed
        # the 107-byte limit. fsync=off because the data is thrown away after the test.
        options = (
            f"-p {self.port} -c listen_addresses={self.host}"
            " -c unix_socket_directories='' -c fsync=off"
        )
        wait = ["-w", "-t", str(int(READY_TIMEOUT))]
        try:
            self._pg_ctl(["-l", str(self.log_file), "-o", options, *wait, "start"])
        except ServerStartError:
            # pg_ctl gives up after its timeout but may leave a postmaster behind.
            self._pg_ctl(["-m", "immediate", "-w", "stop"], check=False)
            raise

    def stop(self) -> None:
        """Stop the cluster (fast shutdown) and wait until the port is closed."""
        if self.is_running():
            self._pg_ctl(["-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT)), "stop"])

    def close(self) -> None:
        """Stop the cluster and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def query(self, sql: str, *, database: str | None = None) -> str:
        """Run SQL through psql over TCP and return its unaligned, tuples-only output."""
        command = [str(self.bindir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", self.host, "-p", str(self.port), "-U", self.user]
        command += ["-d", database or self.database, "-c", sql]
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"}
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create an empty database owned by the superuser and return its URL."""
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
        self.query(f'CREATE DATABASE "{name}"', database="postgres")
        return self.url_for(name)

    def _pg_ctl(self, arguments: list[str], *, check: bool = True) -> int:
        return self._run_server_tool("pg_ctl", ["-D", str(self.data_dir), *arguments], check=check)

    def _run_server_tool(self, tool: str, arguments: list[str], *, check: bool = True) -> int:
        """Run a server binary as the server account; return its exit code."""
        command = [str(self.bindir / tool), *arguments]
        if self.account is not None:
            command = ["runuser", "-u", self.account.pw_name, "--", *command]
        # cwd: the server account may not be allowed to enter the caller's directory.
        result = subprocess.run(
            command,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT + 30,
            check=False,
        )
        if check and result.returncode != 0:
            raise ServerStartError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- {self.log_file} ---\n"
                f"{log_tail(self.log_file)}"
            )
        return result.returncode

    def _give_to_server(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)


def start_postgres(base_dir: Path, *, user: str = "app", database: str = "app") -> PostgresServer:
    """Create, start and return a fresh cluster under base_dir; use it as a context manager.

    Raises ServerUnavailable when the binaries are missing and ServerStartError when the
    server does not come up.
    """
    bindir = postgres_bindir()
    account = _postgres_account()
    server = PostgresServer(
        port=free_port(),
        user=user,
        password=new_password(),
        database=database,
        directory=_postgres_directory(base_dir, account),
        bindir=bindir,
        account=account,
    )
    try:
        server.initdb()
        server.start()
        if database != "postgres":
            server.create_database(database)
    except BaseException:
        server.close()
        raise
    return server

"""What a stack's Redis (or Valkey) is sent, read from MONITOR: the commands and the Lua
scripts that one of its databases receives while a block runs."""

import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness.stack import Stack

# One MONITOR line: `<time> [<db> <client address, or lua>] "COMMAND" "arg" ...`.
LINE = re.compile(r"^[\d.]+ \[(\d+) (\S+)\] (.*)$")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
# Every new connection sends these, whatever the code that opened it does next.
HANDSHAKE = frozenset({"AUTH", "HELLO", "CLIENT", "SELECT"})
# Commands named by their first two words (SCRIPT LOAD, CONFIG GET, ...).
CONTAINERS = frozenset({"ACL", "CONFIG", "FUNCTION", "MEMORY", "OBJECT", "SCRIPT", "XGROUP"})
START_SECONDS = 30
CLI = (
    'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" '
    'exec "$(command -v valkey-cli || command -v redis-cli)"'
)
PID_FILE = "/tmp/monitor.pid"  # the redis service's tmpfs: its root file system is read-only


def commands(lines: Iterable[str], db: int) -> set[str]:
    """The commands sent to database db, each as its name (and subcommand), an EVALSHA with
    its script's digest, and "lua " before what a script ran."""
    sent = set()
    for line in lines:
        match = LINE.match(line)
        if match is None or match.group(1) != str(db):
            continue
        name, *args = QUOTED.findall(match.group(3)) or [""]
        name = name.upper()
        if name in HANDSHAKE:
            continue
        if args and (name in CONTAINERS or name == "EVALSHA"):
            name = f"{name} {args[0].upper() if name in CONTAINERS else args[0]}"
        sent.add(f"lua {name}" if match.group(2) == "lua" else name)
    return sent


@contextmanager
def redis_commands(stack: Stack, db: int) -> Iterator[set[str]]:
    """Yield a set that, once the block has run, holds what database db was sent in it."""
    sent: set[str] = set()
    monitor_script = f"echo $$ > {PID_FILE}; {CLI} monitor"
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "monitor.log"
        with log.open("a") as output:
            monitor = subprocess.Popen(
                ["docker", "exec", stack.container("redis"), "sh", "-c", monitor_script],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_ok(log, monitor)
            yield sent
        finally:
            stack.exec("redis", "sh", "-c", f'kill "$(cat {PID_FILE})"', check=False)
            monitor.wait(timeout=30)
        with log.open() as lines:
            sent.update(commands(lines, db))


def _wait_for_ok(log: Path, monitor: "subprocess.Popen[bytes]") -> None:
    """MONITOR answers OK once it watches: commands sent before would be missed."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and monitor.poll() is None:
        if log.read_text().startswith("OK\n"):
            return
        time.sleep(0.1)
    raise AssertionError(f"redis-cli monitor did not start:\n{log.read_text()[-2000:]}")

"""Image builds that print progress and fail with their output's tail (BuildKit, docker import)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from .engine import BUILD_CLI

BUILD_TIMEOUT = 1800.0


class ImageBuildError(RuntimeError):
    """An image build failed; the message carries the tail of the build output."""


def build_image(
    context: Path,
    tag: str,
    *,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    labels: Mapping[str, str] | None = None,
    echo: bool = False,
) -> None:
    """Build `context` with BuildKit as `tag`; raise ImageBuildError with the output's tail."""
    command = [BUILD_CLI, "build", "--progress=plain", "--tag", tag]
    for name, value in (build_args or {}).items():
        command += ["--build-arg", f"{name}={value}"]
    for name, value in (labels or {}).items():
        command += ["--label", f"{name}={value}"]
    if target is not None:
        command += ["--target", target]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    returncode, tail = run_streaming([*command, str(context)], env=env, echo=echo)
    if returncode != 0:
        raise ImageBuildError(f"building {tag} failed ({returncode}):\n{tail}")


def run_streaming(command: Sequence[str], *, env: Mapping[str, str], echo: bool) -> tuple[int, str]:
    """Run a long command, optionally echoing its output; return its code and output tail."""
    tail: deque[str] = deque(maxlen=60)
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        # A hung apt-get or debootstrap must not hang the test run: kill it after the timeout.
        watchdog = threading.Timer(BUILD_TIMEOUT, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                tail.append(line.rstrip("\n"))
                if echo:
                    print(line, end="", file=sys.stderr, flush=True)
            returncode = process.wait()
        finally:
            watchdog.cancel()
    return returncode, "\n".join(tail)


def import_rootfs(rootfs: Path, tag: str, changes: Sequence[str]) -> None:
    import_command = ["docker", "import"]
    for change in changes:
        import_command += ["--change", change]
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(
            [*import_command, "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar_code = tar.wait()
    if result.returncode != 0 or tar_code != 0:
        raise ImageBuildError(f"importing {tag} failed (tar {tar_code}): {result.stderr.strip()}")


def say(message: str, echo: bool) -> None:
    # Under pytest this lands in the captured output, shown when a test fails.
    print(f"==> {message}", file=sys.stderr if echo else sys.stdout, flush=True)

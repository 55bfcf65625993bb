"""Local stand-ins for the official images, built from Debian packages (no registry here).

Used only when TEMPLATE_STAND_IN_IMAGES=1 (tests/harness/images.py resolves the official
images otherwise). Every image a rendered stack needs is built under a deterministic `local/...`
tag, once, and reused while its recipe (Dockerfile, scripts, build arguments, base image) is
unchanged. Tests hand the tags to compose (POSTGRES_IMAGE, REDIS_IMAGE) and to
`docker build --build-arg PYTHON_IMAGE=...`. See docs/container-lab.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.builds import ImageBuildError, build_image, import_rootfs, run_streaming, say
from tests.harness.engine import ENGINE_HINT, docker

IMAGES_DIR = Path(__file__).with_name("images")
DIGEST_LABEL = "template.stand-in.digest"
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_LOCK_FILE = Path(tempfile.gettempdir(), "template-stand-in-images.lock")


class StandInUnavailable(Exception):
    """No stand-in can be built for an official image; the message says why."""


@dataclass(frozen=True)
class _Recipe:
    """How to build one stand-in: a directory under images/ (None: the debootstrapped base)."""

    context: str | None
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    # python:*-slim images reach PyPI here only with the machine's CA bundle baked in.
    host_ca: bool = False


BASE_TAG = f"local/debian:{DEBIAN_SUITE}"
RECIPES: dict[str, _Recipe] = {
    BASE_TAG: _Recipe(context=None),
    "local/python:3.13-slim": _Recipe("python", {"PYTHON_VERSION": "3.13"}, host_ca=True),
    "local/postgres:17-alpine": _Recipe("postgres", {"PG_MAJOR": "17"}),
    "local/redis:8-alpine": _Recipe("keyvalue", {"SERVER": "redis"}, target="redis"),
    "local/valkey:8-alpine": _Recipe("keyvalue", {"SERVER": "valkey"}, target="valkey"),
    "local/prometheus:v3": _Recipe("prometheus"),
}

STAND_INS: dict[str, str] = {
    "debian:trixie": BASE_TAG,
    "debian:trixie-slim": BASE_TAG,
    "debian:stable-slim": BASE_TAG,
    "python:3.13-slim": "local/python:3.13-slim",
    "postgres:17-alpine": "local/postgres:17-alpine",
    "redis:8-alpine": "local/redis:8-alpine",
    "valkey/valkey:8-alpine": "local/valkey:8-alpine",
    "prom/prometheus:v3.7.3": "local/prometheus:v3",
}

# Official images the template offers but Debian (trixie or bookworm) has no package for.
NOT_BUILDABLE: dict[str, str] = {
    "python:3.12-slim": "no stand-in for python:3.12-slim: Debian trixie ships Python 3.13 and "
    "bookworm 3.11; neither has a python3.12 package",
    "postgres:16-alpine": "no stand-in for postgres:16-alpine: Debian has postgresql-15 "
    "(bookworm) and postgresql-17 (trixie), not 16",
    "postgres:18-alpine": "no stand-in for postgres:18-alpine: no Debian release packages "
    "postgresql-18",
}


def image_labels(tag: str) -> dict[str, str] | None:
    """Return the labels of a local image (empty dict if none), or None when it does not exist."""
    result = docker("image", "inspect", tag, check=False, timeout=30)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout)[0]["Config"].get("Labels")
    return dict(labels or {})


def image_id(tag: str) -> str:
    """Return the ID of a local image."""
    return docker("image", "inspect", "--format", "{{.Id}}", tag, timeout=30).stdout.strip()


def ensure_images(*refs: str, echo: bool = False) -> dict[str, str]:
    """Build the stand-ins for official image refs (or local tags) that are missing or stale.

    Returns {ref: local tag}. Raises StandInUnavailable for an image Debian cannot provide.
    """
    tags = {ref: local_tag(ref) for ref in refs}
    # One builder at a time on this machine: parallel runs would otherwise both debootstrap.
    with _LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for tag in dict.fromkeys(tags.values()):
            _ensure(tag, echo=echo)
    return tags


def local_tag(ref: str) -> str:
    """Return the local stand-in tag for an official image ref (a local tag maps to itself)."""
    if ref in RECIPES:
        return ref
    if ref in STAND_INS:
        return STAND_INS[ref]
    raise StandInUnavailable(NOT_BUILDABLE.get(ref, f"no stand-in is defined for {ref}"))


def python_image(version: str) -> str | None:
    """Return the python:<version>-slim stand-in (built if missing), or None if impossible."""
    return _optional(f"python:{version}-slim")


def postgres_image(major: int | str) -> str | None:
    """Return the postgres:<major>-alpine stand-in (built if missing), or None if impossible."""
    return _optional(f"postgres:{major}-alpine")


def redis_image(flavor: str = "redis") -> str:
    """Return the redis:8-alpine or valkey/valkey:8-alpine stand-in, built if missing."""
    ref = "valkey/valkey:8-alpine" if flavor == "valkey" else "redis:8-alpine"
    return ensure_images(ref)[ref]


def prometheus_image() -> str:
    """Return the prom/prometheus stand-in (Debian's prometheus and promtool), built if missing."""
    ref = "prom/prometheus:v3.7.3"
    return ensure_images(ref)[ref]


def helper_image() -> str:
    """Return an image for throwaway containers (bash, tar, gzip, coreutils), built if missing."""
    return ensure_images(BASE_TAG)[BASE_TAG]


def unavailable_reason(ref: str) -> str | None:
    """Return why no stand-in exists for an official image ref, or None when one does."""
    try:
        local_tag(ref)
    except StandInUnavailable as error:
        return str(error)
    return None


def _optional(ref: str) -> str | None:
    try:
        return ensure_images(ref)[ref]
    except StandInUnavailable:
        return None


def _ensure(tag: str, *, echo: bool) -> None:
    recipe = RECIPES[tag]
    if recipe.context is None:
        digest = _digest([f"debootstrap --variant=minbase {DEBIAN_SUITE}", _BASE_CHANGES])
        if (image_labels(tag) or {}).get(DIGEST_LABEL) != digest:
            _build_base(tag, digest, echo=echo)
        return
    _ensure(BASE_TAG, echo=echo)
    with _build_context(recipe) as context:
        build_args = {"BASE_IMAGE": BASE_TAG, **recipe.build_args}
        # The base image's ID is part of the digest: a rebuilt base rebuilds its children.
        digest = _digest([_tree_text(context), repr(sorted(build_args.items())), recipe.target])
        digest = _digest([digest, image_id(BASE_TAG)])
        if (image_labels(tag) or {}).get(DIGEST_LABEL) == digest:
            return
        say(f"building stand-in image {tag}", echo)
        started = time.monotonic()
        build_image(
            context,
            tag,
            build_args=build_args,
            target=recipe.target,
            labels={DIGEST_LABEL: digest},
            echo=echo,
        )
        say(f"built {tag} in {time.monotonic() - started:.0f} s", echo)


@contextlib.contextmanager
def _build_context(recipe: _Recipe) -> Iterator[Path]:
    """Yield a temporary copy of the recipe's directory, plus the host CA bundle if needed."""
    assert recipe.context is not None
    with tempfile.TemporaryDirectory(prefix="stand-in-") as directory:
        context = Path(directory, "context")
        shutil.copytree(IMAGES_DIR / recipe.context, context)
        if recipe.host_ca:
            shutil.copyfile(_host_ca_bundle(), context / "host-ca.crt")
        yield context


def _host_ca_bundle() -> Path:
    configured = os.environ.get("SSL_CERT_FILE")
    if configured and Path(configured).is_file():
        return Path(configured)
    if HOST_CA_BUNDLE.is_file():
        return HOST_CA_BUNDLE
    raise ImageBuildError(f"no CA bundle at {HOST_CA_BUNDLE} (apt-get install ca-certificates)")


def _tree_text(directory: Path) -> str:
    """Return a text that changes whenever a file's path, mode or content changes."""
    parts = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
            parts.append(f"{path.relative_to(directory)} {path.stat().st_mode:o} {content}")
    return "\n".join(parts)


def _digest(parts: Sequence[str | None]) -> str:
    return hashlib.sha256("\0".join(part or "" for part in parts).encode()).hexdigest()[:16]


# `docker import` starts from an empty config: no PATH, no command. Give it the official
# debian image's.
_BASE_CHANGES = (
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["bash"]'
)


def _build_base(tag: str, digest: str, *, echo: bool) -> None:
    """Debootstrap a minimal Debian into a temporary directory and import it as `tag`."""
    for tool in ("debootstrap", "tar"):
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} not found (apt-get install debootstrap; {ENGINE_HINT})")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root to build the base image")
    say(f"building base image {tag} with debootstrap ({DEBIAN_MIRROR})", echo)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rootfs-") as directory:
        rootfs = Path(directory, "rootfs")
        command = ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR]
        returncode, tail = run_streaming(command, env=os.environ, echo=echo)
        if returncode != 0:
            raise ImageBuildError(f"debootstrap failed ({returncode}):\n{tail}")
        _slim_rootfs(rootfs)
        import_rootfs(rootfs, tag, [*_BASE_CHANGES.splitlines(), f"LABEL {DIGEST_LABEL}={digest}"])
    say(f"built {tag} in {time.monotonic() - started:.0f} s", echo)


def _slim_rootfs(rootfs: Path) -> None:
    # The downloaded .debs and package lists are 100+ MB; builds run apt-get update anyway.
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"):
        for path in rootfs.glob(pattern):
            path.unlink()

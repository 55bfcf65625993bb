"""Which image stands for each image the generated project names.

By default the official images themselves (postgres:17-alpine, redis:8-alpine,
python:3.13-slim, as the generated compose file and Dockerfile name them), pulled when missing.
With TEMPLATE_STAND_IN_IMAGES=1 (.ci/run sets it: its machines reach no registry) the local
stand-ins built from Debian packages instead (tests/lab/, docs/container-lab.md).
"""

from __future__ import annotations

import os

from .engine import docker

STAND_INS_VARIABLE = "TEMPLATE_STAND_IN_IMAGES"
# For throwaway containers: bash, tar, gzip, coreutils and getent, like the stand-in base.
HELPER_IMAGE = "debian:trixie-slim"
PROMETHEUS_IMAGE = "prom/prometheus:v3.7.3"


def stand_ins_wanted() -> bool:
    """True when told to use the Debian-built stand-ins instead of the official images."""
    return os.environ.get(STAND_INS_VARIABLE, "") == "1"


def resolve(ref: str) -> str | None:
    """Return a local image for an official ref, or None when none can be had here."""
    if stand_ins_wanted():
        from tests.lab import stand_ins  # only machines without a registry need the lab

        try:
            return stand_ins.ensure_images(ref)[ref]
        except stand_ins.StandInUnavailable:
            return None
    if docker("image", "inspect", ref, check=False, timeout=30).returncode == 0:
        return ref
    pulled = docker("pull", "--quiet", ref, check=False, timeout=600)
    return ref if pulled.returncode == 0 else None


def unavailable_reason(ref: str) -> str | None:
    """Why `resolve(ref)` gives None, or None when it gives an image."""
    if stand_ins_wanted():
        from tests.lab import stand_ins

        return stand_ins.unavailable_reason(ref)
    if resolve(ref) is not None:
        return None
    return (
        f"cannot pull {ref} (no registry reachable?); on a machine without one, set "
        f"{STAND_INS_VARIABLE}=1 to build stand-ins from Debian (docs/container-lab.md)"
    )


def required(ref: str) -> str:
    """Return a local image for ref, or raise with the reason when there is none."""
    image = resolve(ref)
    if image is None:
        raise RuntimeError(unavailable_reason(ref) or f"no image for {ref}")
    return image


def python_image(version: str) -> str | None:
    """The python:<version>-slim image (or its stand-in), or None when none can be had."""
    return resolve(f"python:{version}-slim")


def postgres_image(major: int | str) -> str | None:
    """The postgres:<major>-alpine image (or its stand-in), or None when none can be had."""
    return resolve(f"postgres:{major}-alpine")


def redis_image(flavor: str = "redis") -> str:
    """The redis:8-alpine or valkey/valkey:8-alpine image (or its stand-in)."""
    return required("valkey/valkey:8-alpine" if flavor == "valkey" else "redis:8-alpine")


def prometheus_image() -> str:
    """The prom/prometheus image the observability profile names (or its stand-in)."""
    return required(PROMETHEUS_IMAGE)


def helper_image() -> str:
    """An image for throwaway containers (or the stand-in base)."""
    return required(HELPER_IMAGE)

"""The container lab's public face: tests use `from tests.harness import docker as lab`.

The engine (engine.py), image builds (builds.py) and the images a rendered project names
(images.py: the official ones, or the Debian-built stand-ins of tests/lab/ when
TEMPLATE_STAND_IN_IMAGES=1) under one name.
"""

from __future__ import annotations

from .builds import build_image
from .engine import (
    TEST_LABEL,
    compose_ready,
    docker,
    docker_ready,
    require_engine,
    wait_until_healthy,
)
from .images import (
    helper_image,
    postgres_image,
    prometheus_image,
    python_image,
    redis_image,
    required,
    resolve,
    stand_ins_wanted,
    unavailable_reason,
)

__all__ = [
    "TEST_LABEL",
    "build_image",
    "compose_ready",
    "docker",
    "docker_ready",
    "helper_image",
    "postgres_image",
    "prometheus_image",
    "python_image",
    "redis_image",
    "require_engine",
    "required",
    "resolve",
    "stand_ins_wanted",
    "unavailable_reason",
    "wait_until_healthy",
]

"""Uniquely named throwaway containers, volumes and networks for the engine's own tests."""

from __future__ import annotations

import os

from .closing import Closing
from .engine import TEST_LABEL, docker


class Scratch(Closing):
    """Uniquely named throwaway containers, volumes and networks; close() removes them all."""

    def __init__(self, prefix: str = "tpl") -> None:
        self.prefix = f"{prefix}-{os.urandom(4).hex()}"
        self.containers: list[str] = []
        self.volumes: list[str] = []
        self.networks: list[str] = []

    def name(self, label: str) -> str:
        """Return a unique name for a container; close() removes it."""
        name = f"{self.prefix}-{label}"
        self.containers.append(name)
        return name

    def volume(self, label: str) -> str:
        """Create and return a named volume; close() removes it."""
        name = f"{self.prefix}-{label}"
        docker("volume", "create", "--label", TEST_LABEL, name)
        self.volumes.append(name)
        return name

    def network(self, label: str) -> str:
        """Create and return a user-defined bridge network (DNS by container name)."""
        name = f"{self.prefix}-{label}"
        docker("network", "create", "--label", TEST_LABEL, name)
        self.networks.append(name)
        return name

    def close(self) -> None:
        """Remove everything created, containers first (they hold the volumes and networks)."""
        for kind, names in (("container", self.containers), ("network", self.networks)):
            if names:
                command = ("rm", "-f", "-v") if kind == "container" else ("rm",)
                docker(kind, *command, *names, check=False, timeout=120)
        if self.volumes:
            docker("volume", "rm", "-f", *self.volumes, check=False, timeout=120)

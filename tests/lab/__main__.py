"""`python -m tests.lab --build-all` builds every stand-in with visible output; `--list` and
`--remove-all` show and delete them (docs/container-lab.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.harness.engine import docker, docker_ready

from .stand_ins import NOT_BUILDABLE, RECIPES, ensure_images, image_labels


def main(argv: Sequence[str] | None = None) -> int:
    """Build, list or remove the stand-in images from the command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--build-all", action="store_true", help="build missing or stale images")
    action.add_argument("--list", action="store_true", help="show the stand-ins and their state")
    action.add_argument("--remove-all", action="store_true", help="delete every stand-in image")
    options = parser.parse_args(argv)
    if reason := docker_ready():
        print(reason, file=sys.stderr)
        return 1
    if options.build_all:
        ensure_images(*RECIPES, echo=True)
    if options.remove_all:
        # Children first: an image that others are built FROM cannot be removed before them.
        for tag in reversed(list(RECIPES)):
            docker("image", "rm", tag, check=False)
    for tag in RECIPES:
        labels = image_labels(tag)
        print(f"{tag:28} {'missing' if labels is None else 'present'}")
    for ref, reason in NOT_BUILDABLE.items():
        print(f"{ref:28} not buildable: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

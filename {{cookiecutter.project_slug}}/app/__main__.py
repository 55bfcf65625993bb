"""Serve the API: `python -m app [uvicorn options]`, the one command line that starts it.

The image, compose.override.yaml and a run on the host all start the service this way, adding
only what differs where they run (--host, --port, --reload). Options given later win.
"""

import importlib
import signal
import sys

import uvicorn

from app.core.memory import freeze_imported

# The app factory, and how the server stops: in-flight requests get up to 20 s after SIGTERM
# (compose's stop_grace_period leaves room for it). No Server header names the software.
# An idle connection stays open 75 s, not uvicorn's 5: a proxy in front (ingress-nginx, an AWS
# load balancer: 60 s) reuses its idle connections, and one the server has just closed under
# it answers the client 502. The server must be the one that waits longer; a proxy that keeps
# them past 75 s needs --timeout-keep-alive above its own.
COMMAND_LINE = [
    "--factory",
    "app.main:create_app",
    "--timeout-graceful-shutdown",
    "20",
    "--timeout-keep-alive",
    "75",
    "--no-server-header",
]


def main() -> None:
    """Run uvicorn's command line; a requested stop (SIGTERM) exits 0."""
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for its caller.
    # With a handler installed here that second delivery returns instead of killing the
    # process, so `docker stop` ends with exit code 0, not 143 (which reads as a failure).
    signal.signal(signal.SIGTERM, lambda *_: None)
    # The app's modules, which uvicorn's factory would import, loaded first to be frozen.
    importlib.import_module("app.main")
    freeze_imported()
    sys.argv = [sys.argv[0], *COMMAND_LINE, *sys.argv[1:]]
    uvicorn.main()


if __name__ == "__main__":
    main()

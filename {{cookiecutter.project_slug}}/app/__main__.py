"""Serve the API: `python -m app [uvicorn options]`, uvicorn's own CLI with a clean SIGTERM exit."""

import signal

import uvicorn


def main() -> None:
    """Run uvicorn's command line; a requested stop (SIGTERM) exits 0."""
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for its caller.
    # With a handler installed here that second delivery returns instead of killing the
    # process, so `docker stop` ends with exit code 0, not 143 (which reads as a failure).
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.main()


if __name__ == "__main__":
    main()

"""A context-manager protocol for the harness's resources: leaving the block calls close()."""

from types import TracebackType
from typing import Self


class Closing:
    """Servers and throwaway Docker objects alike: `with` one, and leaving the block closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

"""Exceptions that carry one user-facing sentence naming the file and the fault."""

from __future__ import annotations

from os import PathLike


class LiverVAEError(Exception):
    """Base class for errors LiverVAE reports to the user without a traceback."""


class InputError(LiverVAEError):
    """Bad input: an unreadable file, a wrong shape, mismatched geometry, unknown labels and the like.

    Args:
        path: the file or folder at fault; it leads the message so the user knows where to look.
        problem: what is wrong with it, as one sentence without a trailing full stop.
    """

    def __init__(self, path: str | PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class NotCTError(InputError):
    """A readable image that is not a CT in Hounsfield units (a label map, MR, unrescaled values).

    Batch runs list such inputs as skipped, as they do non-CT DICOM series; a single case refuses them.
    """


class OutputError(LiverVAEError):
    """An output location that cannot be written (exists, not writable, disk full)."""


def livervae_cause(exc: BaseException) -> LiverVAEError | None:
    """The LiverVAE error `exc` is or was raised from (through `__cause__` / `__context__`), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, LiverVAEError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None

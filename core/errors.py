"""Exceptions raised by the core package.

Every error a user can cause derives from :class:`StudioError` and carries a message that says what
was wrong, where (file, row, column or path) and what was expected.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class for errors caused by user input or state, shown to the user as-is."""


class IngestError(StudioError, ValueError):
    """A metric or incident file could not be read.

    Parameters
    ----------
    message : str
        What was wrong and what was expected.
    file : str, optional
        Name of the offending file.
    row : int, optional
        1-based line number in the file (the header is line 1), when known.
    column : str, optional
        Column (or JSON path) name, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        self.reason = message
        self.file = file
        self.row = row
        self.column = column
        where = []
        if file:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ValidationError(StudioError, ValueError):
    """A rule, policy or setting is invalid. ``path`` names the offending field (e.g. ``rules[2].for``)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.reason = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InsufficientDataError(StudioError):
    """Too few points or events to give an honest number; the message says how many are needed."""


class ConflictError(StudioError):
    """A write was based on a stale version (optimistic concurrency); nothing was written."""


class PermissionDenied(StudioError):
    """The current user's role does not allow this action."""


class NotFound(StudioError, KeyError):
    """A named series, upload, policy version or experiment does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


class DatabaseLocked(StudioError):
    """Another process kept the database file busy for longer than the wait allowed; nothing was done.

    ``holder`` describes that process (its command line and PID) when the operating system says.
    """

    def __init__(self, message: str, *, holder: str | None = None, waited_s: float = 0.0) -> None:
        self.holder = holder
        self.waited_s = waited_s
        super().__init__(message)

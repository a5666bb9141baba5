"""The one exception type for problems a user can fix (bad paths, malformed files, unknown names).

Library code raises it with a message naming the file or field and a hint saying what to do; the command-line entry
points print it without a traceback and exit non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class NerfkitError(Exception):
    """A user-facing error: what went wrong (naming the file or field), and what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n{self.hint}"

"""The one error type a user sees when raw input is wrong.

A ValueError subclass, so callers that already catch ValueError keep working, and the CLI can tell a
bad input (print the message, exit 2) from a bug (let the traceback through).
"""

from __future__ import annotations

import os


class PrepError(ValueError):
    """Raw input that cannot be prepared; the message names the file, where in it, and what was expected."""

    def __init__(
        self,
        file: str | os.PathLike[str] | None,
        problem: str,
        *,
        line: int | None = None,
        key: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.line = line
        self.key = key
        self.problem = problem
        self.expected = expected
        where = self.file or ""
        if line is not None:
            where += f", line {line}"
        if key is not None:
            where += f", key {key!r}"
        message = f"{where}: {problem}" if where else problem
        if expected:
            message += f"; expected {expected}"
        super().__init__(message)

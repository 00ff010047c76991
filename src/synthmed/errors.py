"""Exceptions raised on bad user input.

Every error names the file (and line or field) that is wrong, what was found and what
was expected, so that a user can fix the input without reading synthmed's code.
"""

from __future__ import annotations

from pathlib import Path


class SynthmedError(Exception):
    """Base class of all errors synthmed raises on purpose."""


class DataError(SynthmedError):
    """Bad input data: a missing or corrupt file, a malformed metadata line, a wrong mask size.

    Args:
        message: What is wrong and what was expected.
        path: The offending file, if any.
        line: The 1-based line number inside ``path``, if any.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class ConfigError(SynthmedError):
    """An invalid option or configuration value."""


class TrainingError(SynthmedError):
    """Training cannot go on (a non-finite loss or gradient)."""


class CheckpointError(SynthmedError):
    """A checkpoint cannot be used (incomplete, unreadable, or written by a different configuration)."""


class CaptionError(SynthmedError):
    """No row of a dataset could be captioned (each row's reason is kept in its ``caption_error``).

    Args:
        message: What failed, with the first row's reason.
        summary: The run's ``CaptionSummary`` (counts and every row's error).
    """

    def __init__(self, message: str, summary: object = None):
        self.summary = summary
        super().__init__(message)

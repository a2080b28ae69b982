"""Named errors. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class HnmineError(Exception):
    """Base class: a problem the user can fix. The message is one line."""

    exit_code = 2


class InputError(HnmineError):
    """An input file is missing, unreadable, or holds bad rows."""


class MissingColumn(InputError):
    def __init__(self, path: str, column: str, available: list[str]):
        self.path, self.column, self.available = path, column, available
        cols = ", ".join(available) if available else "(none)"
        super().__init__(f"{path}: no column '{column}' (columns: {cols})")


class UnknownName(HnmineError):
    """A method, retriever, teacher or format name that is not registered."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} '{name}' (valid: {', '.join(sorted(valid))})")


class OptionError(HnmineError):
    """Options that contradict each other or are out of range."""


class RunDirError(HnmineError):
    """The run directory is missing a stage's output, or cannot be written."""


class StorageError(HnmineError):
    """A bucket that cannot be read or written (missing, access denied, unreachable, no credentials)."""


class ModelError(HnmineError):
    """A model could not be loaded or produced unusable scores."""


class MissingDependency(HnmineError):
    """An optional extra that a feature needs is not installed; the message names what to install."""


class Terminated(BaseException):
    """SIGTERM reached the CLI: unwinds like Ctrl-C (temporary files removed, workers stopped), then
    the CLI exits with 143. A BaseException, so no library `except Exception` swallows it."""

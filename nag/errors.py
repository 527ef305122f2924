"""The one exception type entry points treat specially.

A :class:`UserInputError` is bad input the user can fix (a missing file, a malformed metadata row, too many
unreadable images). Its message already says what is wrong and what to do, so ``python -m nag.*`` prints
the message alone and exits with status 1 instead of showing a stack trace. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserInputError(Exception):
    """Bad input from the user: config values, files on disk. The message names the key or file."""


class MissingFileError(UserInputError, FileNotFoundError):
    """A file named in the config does not exist."""


@contextmanager
def reported_as_exit() -> Iterator[None]:
    """Around an entry point's work: a :class:`UserInputError` becomes its message on stderr and exit status 1."""
    try:
        yield
    except UserInputError as e:
        raise SystemExit(f"error: {e}") from None

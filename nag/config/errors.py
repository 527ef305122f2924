"""The one exception type entry points treat specially.

A :class:`UserInputError` is bad input the user can fix (a missing file, a malformed metadata row, too many
unreadable images). Its message already says what is wrong and what to do, so ``python -m nag.*`` prints
the message alone and exits with status 1 instead of showing a stack trace. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class UserInputError(Exception):
    """Bad input from the user: config values, files on disk. The message names the key or file."""


class MissingFileError(UserInputError, FileNotFoundError):
    """A file named in the config does not exist."""


class ConfigError(UserInputError, ValueError):
    """A config value of the wrong type or out of range; the message names the key."""


class DivergenceError(UserInputError, FloatingPointError):
    """The loss or the weights became non-finite: the run stops at once, keeping its last good checkpoint."""


@contextmanager
def reported_as_exit() -> Iterator[None]:
    """Around an entry point's work: a :class:`UserInputError` becomes its message on stderr and exit status 1."""
    try:
        yield
    except UserInputError as e:
        raise SystemExit(f"error: {e}") from None


def instantiate(cfg: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, except that a constructor's :class:`UserInputError` (a value out of range,
    named by its key) is raised as itself instead of wrapped in Hydra's ``InstantiationException``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(cfg, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, UserInputError):
            raise e.__cause__ from None
        raise

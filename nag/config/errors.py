"""The one exception type entry points treat specially.

A :class:`UserInputError` is bad input the user can fix (a missing file, a malformed metadata row, too many
unreadable images). Its message already says what is wrong and what to do, so ``python -m nag.*`` prints
the message alone and exits with status 1 instead of showing a stack trace. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class UserInputError(Exception):
    """Bad input from the user: config values, files on disk. The message names the key or file.

    Its text is escaped when shown (:func:`nag.config.text.printable`): a message that quotes a file cannot start a
    new line in a log or a terminal. ``details`` are shown each on a line of its own, escaped alike.
    """

    def __init__(self, message: str = "", *args: Any, details: Sequence[str] = ()) -> None:
        super().__init__(message, *args)
        self.details = tuple(str(d) for d in details)

    def __str__(self) -> str:
        from nag.config.text import printable

        return printable(super().__str__()) + "".join(f"\n  {printable(d)}" for d in self.details)


class MissingFileError(UserInputError, FileNotFoundError):
    """A file named in the config does not exist."""


class ConfigError(UserInputError, ValueError):
    """A config value of the wrong type or out of range; the message names the key."""


class DivergenceError(UserInputError, FloatingPointError):
    """The loss or the weights became non-finite: the run stops at once, keeping its last good checkpoint."""


@contextmanager
def reported_as_exit() -> Iterator[None]:
    """Around an entry point's work: a :class:`UserInputError` becomes its message on stderr and exit status 1;
    the log records of its work are escaped (:func:`nag.config.console.escape_logs`)."""
    from nag.config.console import escape_logs

    escape_logs()
    try:
        yield
    except UserInputError as e:
        raise SystemExit(f"error: {e}") from None


class CheckFailedError(UserInputError):
    """A trust check that could not finish (an unexpected error inside it): the command stops, as if refused."""


def fail_closed(what: str, error: BaseException) -> UserInputError:
    """The refusal an unexpected exception inside a trust check becomes: a check that cannot say yes says no.

    Args:
        what: The check, for the message (e.g. ``hydra.sweep.dir=<dir>``).
        error: What it raised.
    """
    if isinstance(error, UserInputError):
        return error
    reason = str(error) or type(error).__name__
    return CheckFailedError(
        f"{what}: the safety check could not finish ({type(error).__name__}: {reason[:300]}); nag stops rather "
        "than go on unchecked. Fix what the message names (e.g. a folder that cannot be read), or move it away."
    )


@contextmanager
def checked(what: str) -> Iterator[None]:
    """Around a trust check: any exception it raises stops the command as a refusal (:func:`fail_closed`), so a
    check that raises the wrong kind of exception is never skipped by a caller catching only refusals."""
    try:
        yield
    except UserInputError:
        raise
    except Exception as e:
        raise fail_closed(what, e) from e


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

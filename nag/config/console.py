"""A clean console for the entry points: third-party noise off, nag's own warnings untouched.

Installed by ``python -m nag.*`` only (not on ``import nag``), so a notebook or a test that imports nag sees
everything. Each filter names one known message of one library, never a whole category.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

#: Deprecation warnings raised inside third-party code about third-party APIs (nothing a nag user can act on).
#: The one list: the entry points install it (:func:`quiet_third_party`) and so does the test suite's conftest.
THIRD_PARTY_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",  # Lightning's own use of torch's pytree API
    r".*`torch\.cuda\.amp\..*` is deprecated.*",
)
#: Modules whose own DeprecationWarnings are theirs to fix (TensorBoard's use of numpy and protobuf APIs).
THIRD_PARTY_DEPRECATING_MODULES = (r"tensorboard.*",)


class _DropTips(logging.Filter):
    """Lightning's advertisements for its cloud products ("💡 Tip: ... litlogger ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


class EscapingFormatter(logging.Formatter):
    """Wraps a handler's formatter so that no log record spans two lines: the message (its arguments filled in)
    and the exception messages in a traceback are escaped (:func:`nag.config.text.printable`). A message quoting a
    file (a checkpoint's callback name, an override value) can then never write a line of its own into a log,
    whatever the log file is."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        from nag.config.text import printable

        record.msg, record.args = printable(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return self.inner.format(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        from nag.config.text import printable

        text = self.inner.formatException(ei)
        error, seen = ei[1], set()
        while error is not None and id(error) not in seen:  # the chain: each message as the traceback shows it
            seen.add(id(error))
            message = str(error)
            if message and not message.isprintable():
                text = text.replace(message, printable(message))
            error = error.__cause__ or error.__context__
        return text


def escape_logs(logger: logging.Logger | None = None) -> None:
    """Escape every record of ``logger``'s handlers (the root logger's: Hydra's console and ``train.log``) with
    :class:`EscapingFormatter`; called by each entry point once its logging is set up (idempotent)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, EscapingFormatter):
            handler.setFormatter(EscapingFormatter(handler.formatter))


def single_lightning_log() -> None:
    """Print Lightning's messages once: the ``lightning`` package adds its own console handler at import, which
    doubles every message when the root logger already prints (Hydra's job logging, which also writes the run's
    log file). Call after importing Lightning."""
    if logging.getLogger().hasHandlers():
        lightning_log = logging.getLogger("lightning")
        for handler in list(lightning_log.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_log.removeHandler(handler)


def quiet_third_party() -> None:
    for pattern in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for module in THIRD_PARTY_DEPRECATING_MODULES:
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())


def config_help(config_name: str, about: str) -> str:
    """``--help`` of a Hydra entry point: ``about`` (what it does and its commonest commands), then each config
    group ``conf/<config_name>.yaml`` selects, with its options and default, and the keys it sets itself."""
    from omegaconf import OmegaConf

    from nag import CONF_DIR

    root = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    lines = [about.strip(), "", "Config groups (choose with group=option; see docs/training.md for each):"]
    for entry in root.get("defaults", []):
        if not isinstance(entry, dict) and not OmegaConf.is_dict(entry):
            continue  # _self_
        ((group, default),) = dict(entry).items()
        if group in ("hydra", "paths"):
            continue  # run directories and data paths: set by keys, not options
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        shown = ", ".join(options)
        lines.append(f"  {group:<15} {shown}   (default: {default if default is not None else 'none'})")
    own = [k for k in root if k not in ("defaults", "hydra")]
    lines += [
        "",
        f"Keys of {config_name}.yaml: {', '.join(own)}",
        "Any key can be set: key=value, e.g. data.batch_size=32. Show the composed config: --cfg job.",
        "Hydra's own options: --hydra-help.",
    ]
    return "\n".join(lines)


def print_help_and_exit(argv: list[str], config_name: str, about: str) -> None:
    """If ``argv`` asks for help (``--help``/``-h``), print :func:`config_help` and exit 0."""
    if "--help" in argv or "-h" in argv:
        print(config_help(config_name, about))
        raise SystemExit(0)

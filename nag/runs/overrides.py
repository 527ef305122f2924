"""Command-line overrides: reading them, and the rules for those that come back from a run dir.

A run dir's ``.hydra/overrides.yaml`` is how ``resume=<run dir>`` knows what the run was, and how ``nag.compare``
labels a sweep's jobs. It is a file on disk, hence data and not a command: :func:`check_stored` lets back only
what a researcher's own training command holds — the project's config groups (``data=synthetic``) and settings of
keys the config already has (``prior.mean=-3``, ``~callbacks.probes``). Never an added key (``+x=…``: a new
``_target_``), never a key starting with ``_`` (``_target_``, ``_args_``), never ``hydra.*`` or ``hydra/…``
(``hydra.job.chdir``, callbacks, launcher, sweeper, search path), never a setting of where nag writes
(``paths.cache_dir``, a callback's ``dirpath``), never an interpolation (``${oc.env:…}``) and never a mapping value.
The command line the user types stays trusted and is not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nag import CONF_DIR
from nag.config.errors import UserInputError
from nag.config.keys import PER_INVOCATION, READ_KEYS, WRITE_KEY_ENDINGS, WRITE_KEYS


class StoredOverrideError(UserInputError):
    """An override read from a run dir that nag will not apply."""


def override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``a@pkg=x`` -> ``a.b`` / ``a.b`` / ``a@pkg``."""
    return override.lstrip("~+").split("=", 1)[0]


def override_values(overrides: Iterable[str]) -> dict[str, str]:
    """``["prior.mean=-3", "+x=1", "~y"]`` -> ``{"prior.mean": "-3", "x": "1"}`` (deletions carry no value)."""
    out = {}
    for o in overrides:
        if "=" in o and not o.startswith("~"):
            out[override_key(o)] = o.split("=", 1)[1]
    return out


def writes_somewhere(key: str) -> bool:
    """Whether ``key`` says where nag writes (``paths.cache_dir``, ``callbacks.x.dirpath``, ...)."""
    if key in READ_KEYS:  # where the data is read from
        return False
    return key in WRITE_KEYS or key.startswith("paths.") or key.rsplit(".", 1)[-1] in WRITE_KEY_ENDINGS


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, list | tuple):
        return any(_has_interpolation(v) for v in value)
    return False


def _plain_value(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_plain_value(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def groups(conf_dir: Path = CONF_DIR) -> set[str]:
    """The project's config groups (``data``, ``prior``, ... ; ``hydra/launcher`` included)."""
    return {str(p.relative_to(conf_dir)) for p in conf_dir.rglob("*") if p.is_dir()}


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_stored(overrides: Any, source: Path, conf_dir: Path = CONF_DIR) -> list[str]:
    """The overrides of a run dir's ``overrides.yaml`` if every one is allowed back (module docstring).

    Args:
        overrides: What the file holds (a list of strings for a file nag wrote).
        source: The file, for messages.

    Raises:
        StoredOverrideError: Naming the file, the override and why, for the first one refused.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if overrides is None:
        return []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise StoredOverrideError(f"{source} is not a list of overrides (it holds a {type(overrides).__name__}).")
    parser = OverridesParser.create()
    known_groups = groups(conf_dir)

    def refuse(i: int, text: str, why: str) -> StoredOverrideError:
        shown = text if len(text) <= 120 else text[:117] + "..."
        return StoredOverrideError(
            f"{source}, entry {i + 1}: {shown!r} {why}. A run dir's stored overrides are data: they may choose nag's "
            "own config options and set keys the config has, nothing else. Refused; if you mean it, type it on "
            "the command line yourself."
        )

    for i, text in enumerate(overrides):
        if len(text) > 10_000:
            raise refuse(i, text, "is too long to be an override nag wrote")
        try:
            (ov,) = parser.parse_overrides([text])
        except (HydraException, ValueError) as e:
            raise refuse(i, text, f"is not an override ({' '.join(str(e).split())[:100]})") from None
        key = ov.key_or_group
        parts = key.replace("/", ".").split(".")
        if parts[0] == "hydra":
            raise refuse(i, text, "changes Hydra itself (working directory, callbacks, launcher, search path)")
        if ov.is_add() or ov.is_force_add():
            raise refuse(i, text, "adds a key the config does not have (e.g. a new _target_ to build)")
        if ov.package is not None:
            raise refuse(i, text, "moves a config to another package")
        if any(p.startswith("_") or not p for p in parts):
            raise refuse(i, text, "sets a special key (_target_, _args_, ...) that names code")
        if writes_somewhere(key):
            raise refuse(i, text, "sets where nag writes, which only this machine's own command line may")
        if ov.is_sweep_override():
            raise refuse(i, text, "is a sweep, not one job's setting")
        if ov.is_delete():
            continue
        value = ov.value()
        if not _plain_value(value):
            raise refuse(i, text, "sets a whole mapping, which could name code")
        if _has_interpolation(value):
            raise refuse(i, text, "holds an interpolation (${...}), which would run a resolver")
        if key in known_groups:
            choices = options(key, conf_dir)
            chosen = value if isinstance(value, list) else [value]  # callbacks=[samples,probes] picks several
            if any(v is not None and v not in choices for v in chosen):
                raise refuse(i, text, f"is not one of nag's {key} options ({', '.join(choices)})")
    return list(overrides)


def carried_over(stored: Sequence[str], new: Sequence[str]) -> list[str]:
    """The stored overrides a resumed command keeps: those the new command does not replace, without the
    per-invocation ones."""
    replaced = {override_key(o) for o in new}
    return [o for o in stored if override_key(o) not in replaced and override_key(o) not in PER_INVOCATION]

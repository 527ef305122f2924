"""Checking a composed config before anything is built: every value against its component's declaration.

Hydra composes whatever the command line says (``prior.mean=abc`` is a string, ``data.batch_size=1`` an int);
without this check the mistake would surface minutes later, deep in a constructor or after a cache build. There
is no list of keys here: each component declares its parameters once, in its constructor's signature
(:mod:`nag.config.params`), and every mapping of the config with a ``_target_`` is checked against the
declaration of the class it names, read from source (:mod:`nag.config.signatures`), so a new prior or distance
brings its own rules and a renamed parameter takes its rule with it. The keys that are not a component's (the
root of ``train.yaml``, what nag passes to Lightning's Trainer) are declared by the entry point that reads them,
as a dataclass passed in ``roots``. Every problem is listed in one message, named by its config path, before
torch and Lightning are imported.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nag.config.checks import _split, problem
from nag.config.errors import ConfigError
from nag.config.params import VOCABULARY, Keys
from nag.config.signatures import parameters

_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` as plain data, :data:`_ABSENT` if the config has no such key."""
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _shown(value: Any) -> str:
    return repr(value)


def _check(cfg: DictConfig, path: str, declared: list[tuple[str, Any]], problems: list[str]) -> None:
    """Check the declared parameters of the component at ``path`` (``""`` for the root)."""

    def key(name: str) -> str:
        return f"{path}.{name}" if path else name

    def sibling(name: str) -> Any:
        try:
            value = _value(cfg, key(name))
        except Exception:  # a sibling that does not resolve is reported as itself
            return None
        return None if value is _ABSENT else value

    for name, annotation in declared:
        if annotation is None:
            continue
        try:
            value = _value(cfg, key(name))
        except Exception as e:  # a missing mandatory value (???) or an interpolation that does not resolve
            problems.append(f"{key(name)}: {e}".splitlines()[0])
            continue
        if value is _ABSENT:
            continue
        base, meta = _split(annotation)
        keys = next((m for m in meta if isinstance(m, Keys)), None)
        if keys is not None and isinstance(value, Mapping):  # a sub-mapping's own keys, each by its path
            _check(cfg, key(name), list(keys.declared.items()), problems)
            continue
        found = problem(value, annotation, sibling, key)
        if found:
            problems.append(f"{key(name)}={_shown(value)} {found}")


def _components(cfg: DictConfig, path: str = "") -> list[tuple[str, str]]:
    """``(path, _target_)`` of every mapping with a ``_target_`` (Hydra's own config left out)."""
    out = []
    target = cfg.get("_target_") if isinstance(cfg, DictConfig) else None
    if isinstance(target, str):
        out.append((path, target))
    for k in cfg if isinstance(cfg, DictConfig) else ():
        if path == "" and k == "hydra":
            continue
        try:
            child = cfg._get_node(k)
        except Exception:  # noqa: S112 - a node that cannot be read is reported by the value checks
            continue
        if isinstance(child, DictConfig):
            out += _components(child, f"{path}.{k}" if path else str(k))
    return out


def declared_fields(keys: type) -> list[tuple[str, Any]]:
    """The fields of an entry point's key dataclass, with their annotations."""
    # The vocabulary as local names too: under submitit the entry point's module is another process's __main__.
    hints = typing.get_type_hints(keys, localns=dict(VOCABULARY), include_extras=True)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(keys)]


def validate(cfg: DictConfig, roots: Mapping[str, type] | None = None, components: bool = True) -> None:
    """Check every component of ``cfg`` against its declaration and every key of ``roots`` (config path ->
    dataclass of declared keys, e.g. ``{"": TrainKeys, "trainer": TrainerKeys}``); raise one
    :class:`ConfigError` listing every problem. A key dataclass may add ``checks(get) -> list[str]`` for rules
    between its keys (``get`` reads a value by config path). ``components=False`` checks the roots' keys only
    (an entry point's own keys, before it reads the files that complete its config)."""
    problems: list[str] = []
    for path, keys in (roots or {}).items():
        _check(cfg, path, declared_fields(keys), problems)
    for path, target in _components(cfg) if components else []:
        declared = parameters(target)
        if declared:
            _check(cfg, path, list(declared), problems)
    if not problems:
        get: Callable[[str], Any] = lambda key: OmegaConf.select(cfg, key, default=None)  # noqa: E731
        for keys in (roots or {}).values():
            checks = getattr(keys, "checks", None)
            if checks is not None:
                problems += checks(get)
    if problems:
        raise ConfigError("invalid config:", details=list(dict.fromkeys(problems)))

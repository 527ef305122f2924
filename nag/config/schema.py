"""Types and ranges of the config keys, checked as soon as a config is composed, before anything is built.

Hydra composes whatever the command line says (``prior.mean=abc`` is a string, ``data.batch_size=1`` an int);
without this check the mistake would surface minutes later, deep in a constructor or after a cache build. Each
rule names a key; keys a config does not have (e.g. ``prior.variance`` for a mixture prior) are skipped, so new
priors and distances need no entry unless they add keys of their own. This module imports only OmegaConf, so an
error is reported before torch and Lightning load.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nag.config.errors import ConfigError

_MISSING = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class Rule:
    """One key: its type, optional bounds, and whether null is allowed.

    ``kind`` is ``int``, ``float`` (ints accepted), ``floats`` (one number or a list of numbers, e.g. a prior's
    per-dimension mean), ``bool``, ``bool_or_auto`` (true, false or ``auto``) or ``str``.
    """

    key: str
    kind: str
    low: float | None = None
    low_open: bool = False  # > low instead of >= low
    high: float | None = None
    high_open: bool = False
    nullable: bool = False
    hint: str = ""

    def check(self, value: Any) -> str | None:
        """The problem with ``value`` as a sentence, or None."""
        if value is None:
            return None if self.nullable else "must be set (it is null)"
        values: Sequence[Any]
        if self.kind == "floats":
            values = list(value) if isinstance(value, list | tuple | ListConfig) else [value]
            if not values or not all(_is_number(v) for v in values):
                return "must be a number or a list of numbers"
        elif self.kind == "int":
            if not _is_int(value):
                return "must be an integer"
            values = [value]
        elif self.kind == "float":
            if not _is_number(value):
                return "must be a number"
            values = [value]
        elif self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        elif self.kind == "str":
            return None if isinstance(value, str) else "must be a string"
        elif self.kind == "bool_or_auto":
            return None if isinstance(value, bool) or value == "auto" else "must be true, false or auto"
        else:  # pragma: no cover - a typo in a rule
            raise AssertionError(f"unknown rule kind {self.kind!r}")
        for v in values:
            if not math.isfinite(v):
                return "must be finite"
            if self.low is not None and (v <= self.low if self.low_open else v < self.low):
                return f"must be {'>' if self.low_open else '>='} {self.low:g}"
            if self.high is not None and (v >= self.high if self.high_open else v > self.high):
                return f"must be {'<' if self.high_open else '<='} {self.high:g}"
        return None


def _positive_int(key: str, low: int = 1, **kw: Any) -> Rule:
    return Rule(key, "int", low=low, **kw)


#: The keys of ``nag.train`` and ``nag.evaluate`` configs.
RULES: tuple[Rule, ...] = (
    Rule("seed", "int", nullable=True),
    Rule("test", "bool"),
    Rule("ckpt_path", "str", nullable=True),
    Rule("resume", "str", nullable=True),
    # model
    _positive_int("model.latent_dim"),
    _positive_int("model.encoder.hidden_dim", nullable=True),
    _positive_int("model.encoder.kernel_size"),
    Rule("model.optimizer.lr", "float", low=0, low_open=True),
    Rule("model.compile", "bool"),
    Rule("model.channels_last", "bool_or_auto"),
    Rule("model.optimizer.weight_decay", "float", low=0),
    # prior
    Rule("prior.mean", "floats"),
    Rule("prior.variance", "floats", low=0, low_open=True),
    _positive_int("prior.n_components"),
    Rule("prior.radius", "float", low=0),
    # matching
    Rule("matching.weight", "float", low=0),
    _positive_int("matching.n_projections"),
    Rule("matching.p", "float", low=1),
    # data
    _positive_int("data.image_size", low=8),
    _positive_int("data.batch_size", low=2, hint="batch norm and the matching distances need two images"),
    _positive_int("data.num_workers", low=0),
    _positive_int("data.n_train"),
    _positive_int("data.n_val"),
    _positive_int("data.n_test"),
    _positive_int("data.crop"),
    Rule("data.max_bad_fraction", "float", low=0, high=1, high_open=True),
    _positive_int("data.max_image_pixels"),
    Rule("data.flip", "bool"),
    Rule("data.download", "bool"),
    Rule("data.pin_memory", "bool"),
    Rule("data.on_device", "bool"),
    Rule("data.split_fractions", "floats", low=0, low_open=True),
    # trainer and checkpoints
    _positive_int("trainer.max_epochs", low=-1, hint="-1 trains until trainer.max_steps"),
    _positive_int("trainer.max_steps", low=-1),
    _positive_int("trainer.log_every_n_steps"),
    _positive_int("callbacks.last_checkpoint.every_n_train_steps", low=0),
    # evaluate
    _positive_int("n_eval", low=2),
    _positive_int("n_samples", low=2),
    _positive_int("n_fit", low=2),
)


def _cross_checks(cfg: DictConfig) -> list[str]:
    """Constraints between keys."""
    get: Callable[[str], Any] = lambda key: OmegaConf.select(cfg, key, default=None)  # noqa: E731
    problems = []
    size = get("data.image_size")
    if _is_int(size) and size % 8:
        problems.append(f"data.image_size={size} must be a multiple of 8 (the nets halve it three times)")
    crop = get("data.crop")
    if _is_int(crop) and _is_int(size) and crop < size:
        problems.append(
            f"data.crop={crop} is smaller than data.image_size={size}: the crop would be upscaled; "
            f"use data.crop >= {size}"
        )
    fractions = get("data.split_fractions")
    if isinstance(fractions, ListConfig) and len(fractions) != 3:
        problems.append(f"data.split_fractions={list(fractions)} must be three fractions (train, val, test)")
    epochs, steps = get("trainer.max_epochs"), get("trainer.max_steps")
    if epochs == 0 or (epochs == -1 and not (_is_int(steps) and steps > 0)):
        problems.append(
            f"trainer.max_epochs={epochs} trains nothing: give at least 1 epoch (or -1 with trainer.max_steps > 0)"
        )
    d = get("model.latent_dim")
    for key in ("prior.mean", "prior.variance"):
        v = get(key)
        if isinstance(v, ListConfig) and _is_int(d) and len(v) not in (1, d):
            problems.append(f"{key} has {len(v)} values but model.latent_dim={d}: give one value or {d}")
    return problems


def validate(cfg: DictConfig, rules: Sequence[Rule] = RULES) -> None:
    """Check every rule whose key ``cfg`` has; raise one :class:`ConfigError` listing every problem."""
    problems = []
    for rule in rules:
        try:
            value = OmegaConf.select(cfg, rule.key, default=_MISSING, throw_on_missing=True)
        except Exception as e:  # a missing mandatory value (???) or an interpolation that does not resolve
            problems.append(f"{rule.key}: {e}".splitlines()[0])
            continue
        if value is _MISSING:
            continue
        if isinstance(value, DictConfig):
            problems.append(f"{rule.key} must be a value, not a group")
            continue
        problem = rule.check(value)
        if problem:
            shown = list(value) if isinstance(value, ListConfig) else value
            hint = f" ({rule.hint})" if rule.hint else ""
            problems.append(f"{rule.key}={shown!r} {problem}{hint}")
    if not problems:
        problems = _cross_checks(cfg)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))

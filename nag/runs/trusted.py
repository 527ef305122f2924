"""What a config read from disk may build: an explicit allow-list, checked before anything is instantiated.

Hydra's ``instantiate`` imports and calls whatever a ``_target_`` names, so a crafted checkpoint or run dir naming
``builtins.exec`` or ``torch.load`` would run it. Every ``_target_`` of such a config, however deeply nested, must
name a class *defined* in an allowed module (:func:`_allowed_bases`: nag's priors, distances, nets, data modules and
schedules, torch's optimizers and schedulers) deriving from that module's base class, and each checkpoint
hyper-parameter one of its role (:data:`CHECKPOINT_ROLES`). Module paths are matched as text first, so a refused
target is never imported; an interpolation is refused (a resolver is code, and what nag stores is resolved).
The rules as a user meets them: docs/reliability.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from nag.config.errors import UserInputError

# Keys Hydra's instantiate reads besides _target_ and _args_ (plain flags, never code).
_HYDRA_FLAGS = {"_partial_", "_recursive_", "_convert_"}

#: The package prefixes each checkpoint hyper-parameter's ``_target_`` must come from.
CHECKPOINT_ROLES = {
    "encoder": ("nag.model.nets",),
    "decoder": ("nag.model.nets",),
    "prior": ("nag.model.priors",),
    "matching": ("nag.model.matching", "nag.model.distances"),
    "optimizer": ("torch.optim",),
    "scheduler": ("torch.optim.lr_scheduler", "nag.model.schedules"),
}
#: The hyper-parameters a checkpoint may lack (written before they existed), with the model's defaults that then
#: apply: loading and resuming read a missing one as its default, the value it was trained with.
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "scheduler": None,
    "recon_emphasis": 0.0,
    "recon_ssim": 0.0,
    "recon_frequency": 0.0,
}


#: Where nag's classes lived before the model and training layers got their folders: checkpoints written then
#: name them so, and still load (:func:`moved`).
MOVED_MODULES = {
    "nag.nets": "nag.model.nets",
    "nag.priors": "nag.model.priors",
    "nag.matching": "nag.model.matching",
    "nag.schedules": "nag.model.schedules",
}


def moved(cfg: Any) -> Any:
    """A plain config tree with every ``_target_`` of a module in :data:`MOVED_MODULES` renamed to where the class
    lives now (as text, before anything is checked or imported)."""
    if isinstance(cfg, Mapping):
        out = {k: moved(v) for k, v in cfg.items()}
        target = out.get("_target_")
        if isinstance(target, str):
            module, _, name = target.rpartition(".")
            out["_target_"] = f"{MOVED_MODULES.get(module, module)}.{name}" if module else target
        return out
    if isinstance(cfg, list):
        return [moved(v) for v in cfg]
    return cfg


class UntrustedConfigError(UserInputError):
    """A config read from disk names something outside the allow-list."""


def _allowed_bases() -> dict[str, tuple[type, ...]]:
    """Module prefix -> the base classes a target there must derive from (imported when checked: torch is heavy)."""
    import torch
    from torch import nn

    from nag.data.datamodule import ImageDataModule
    from nag.model.matching import PriorMatching
    from nag.model.priors import Prior

    schedulers = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    return {
        "nag.model.priors": (Prior,),
        "nag.model.matching": (PriorMatching,),
        "nag.model.distances": (PriorMatching,),
        "nag.model.nets": (nn.Module,),
        "nag.data": (ImageDataModule,),
        "torch.optim.lr_scheduler": schedulers,
        "nag.model.schedules": schedulers,
        "torch.optim": (torch.optim.Optimizer,),
    }


def _training_bases() -> dict[str, tuple[type, ...]]:
    """What a composed training config may build besides :func:`_allowed_bases`: the Lightning glue of ``conf/``."""
    import lightning.pytorch as pl
    from lightning.fabric.plugins import CheckpointIO
    from lightning.pytorch.loggers import Logger

    return {
        **_allowed_bases(),
        "nag.training.module": (pl.LightningModule,),
        "nag.training.callbacks": (pl.Callback,),
        "nag.training.checkpoint": (pl.Callback, CheckpointIO),
        "nag.training.progress": (pl.Callback,),
        "lightning.pytorch.callbacks": (pl.Callback,),
        "lightning.pytorch.loggers": (Logger,),
        "lightning.pytorch": (pl.Trainer,),
    }


def _prefix(module: str, allowed: Mapping[str, Any]) -> str | None:
    """The allowed package ``module`` is (or is inside of); the most specific one wins."""
    hits = [p for p in allowed if module == p or module.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def check_target(
    target: Any,
    where: str,
    allowed: Mapping[str, tuple[type, ...]] | None = None,
    prefixes: tuple[str, ...] | None = None,
) -> None:
    """Raise :class:`UntrustedConfigError` unless ``target`` names an allowed class (see the module docstring).

    Args:
        target: The ``_target_`` value.
        where: Its place, for messages.
        allowed: Module prefix -> base classes (default: :func:`_allowed_bases`).
        prefixes: Only these of the allowed prefixes (a checkpoint role, :data:`CHECKPOINT_ROLES`).
    """
    allowed = allowed if allowed is not None else _allowed_bases()
    if prefixes is not None:
        allowed = {p: b for p, b in allowed.items() if p in prefixes}
    if not isinstance(target, str) or "." not in target:
        raise UntrustedConfigError(f"{where}._target_={target!r} is not a 'module.Class' name; refused.")
    module, _, name = target.rpartition(".")
    prefix = _prefix(module, allowed)
    if prefix is None or name.startswith("_") or "${" in target:
        raise UntrustedConfigError(
            f"{where}._target_={target!r} is not on nag's allow-list of classes a stored config may build "
            f"{'there' if prefixes else ''} (subclasses of the base classes in {sorted(allowed)}); refused without "
            "importing it."
        )
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UntrustedConfigError(f"{where}._target_={target!r} does not exist ({e}).") from None
    bases = allowed[prefix]
    defined_there = getattr(obj, "__module__", "") == prefix or str(getattr(obj, "__module__", "")).startswith(
        prefix + "."
    )
    if not (isinstance(obj, type) and issubclass(obj, bases) and defined_there):
        raise UntrustedConfigError(
            f"{where}._target_={target!r} is not a subclass of {' / '.join(b.__name__ for b in bases)} defined in "
            f"{prefix}; refused."
        )


def check_config(
    cfg: Any,
    where: str,
    roles: Mapping[str, tuple[str, ...]] | None = None,
    allowed: Mapping[str, tuple[type, ...]] | None = None,
) -> None:
    """Check every ``_target_`` (and every string) in a plain config tree before it is instantiated.

    Args:
        cfg: A plain ``dict``/``list`` tree (e.g. a checkpoint's hyper-parameters), or a leaf.
        where: Its name in messages, e.g. ``checkpoint hyper_parameters.matching``.
        roles: For a mapping ``cfg``: top-level key -> the prefixes its own ``_target_`` must come from
            (:data:`CHECKPOINT_ROLES` for a checkpoint's hyper-parameters).
        allowed: Module prefix -> base classes (default: :func:`_allowed_bases`).
    """
    allowed = allowed if allowed is not None else _allowed_bases()
    if isinstance(cfg, Mapping):
        for key in cfg:
            if not isinstance(key, str):
                raise UntrustedConfigError(f"{where} has a non-string key {key!r}; refused.")
        if "_target_" in cfg:
            check_target(cfg["_target_"], where, allowed)
        for key, value in cfg.items():
            if key == "_target_":
                continue
            if key in _HYDRA_FLAGS:
                if not isinstance(value, bool | str | type(None)):
                    raise UntrustedConfigError(f"{where}.{key}={value!r} must be a flag; refused.")
                continue
            if roles and key in roles and isinstance(value, Mapping):
                if "_target_" not in value:
                    raise UntrustedConfigError(f"{where}.{key} names no class (_target_) to build; refused.")
                check_target(value["_target_"], f"{where}.{key}", allowed, roles[key])
            check_config(value, f"{where}.{key}", allowed=allowed)
    elif isinstance(cfg, list | tuple):
        for i, value in enumerate(cfg):
            check_config(value, f"{where}[{i}]", allowed=allowed)
    elif isinstance(cfg, str):
        if "${" in cfg:
            raise UntrustedConfigError(
                f"{where}={cfg!r} is an interpolation; a stored config holds resolved values only. Refused."
            )
    elif not isinstance(cfg, int | float | bool | type(None)):
        raise UntrustedConfigError(f"{where} holds a {type(cfg).__name__}, not a plain config value; refused.")


def check_training_config(cfg: Any, where: str) -> None:
    """Every ``_target_`` of a training config composed from a run dir's overrides, before anything is resolved
    or built: only :func:`_training_bases` classes, and no ``_target_`` that is an interpolation."""
    from omegaconf import DictConfig, OmegaConf

    tree = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    allowed = _training_bases()

    def visit(node: Any, at: str) -> None:
        if isinstance(node, Mapping):
            if "_target_" in node:
                check_target(node["_target_"], at, allowed)
            for key, value in node.items():
                if key != "hydra":
                    visit(value, f"{at}.{key}" if at else str(key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{at}[{i}]")

    visit(tree, where)


def build_stored(cfg: Any, where: str) -> Any:
    """Instantiate a plain config read from disk (e.g. a run's ``data`` section, from
    :meth:`nag.runs.stored_config.StoredConfig.section`) after checking it against the allow-list. Nothing is
    resolved here: an interpolation left in it is refused."""
    from nag.config.errors import instantiate

    check_config(cfg, where)
    return instantiate(cfg)

"""What a config read from disk may build: an explicit allow-list, checked before anything is instantiated.

A checkpoint stores the model's collaborators as ``_target_`` configs (the nets, the prior, the matching
distance, the optimizer and scheduler) so that it is self-contained, and a run dir's ``.hydra/config.yaml``
says which data it trained on. Hydra's ``instantiate`` would import and call whatever such a config names: a
crafted checkpoint or run dir naming ``builtins.exec``, ``os.system`` or ``torch.load`` would run it. So every
``_target_`` in such a config, however deeply nested (also inside ``_args_`` and lists), must name a class of
an allowed module that derives from that module's allowed base class:

=============================  ==========================================
module                         allowed classes
=============================  ==========================================
``nag.priors`` (and below)     subclasses of :class:`nag.priors.Prior`
``nag.matching`` (and below)   subclasses of :class:`nag.matching.PriorMatching`
``nag.nets`` (and below)       ``torch.nn.Module`` subclasses defined there
``nag.data`` (and below)       subclasses of :class:`nag.data.datamodule.ImageDataModule`
``torch.optim``                subclasses of ``torch.optim.Optimizer``
``torch.optim.lr_scheduler``   subclasses of ``LRScheduler`` / ``ReduceLROnPlateau``
``nag.schedules``              subclasses of ``LRScheduler``
=============================  ==========================================

Strings holding OmegaConf interpolations (``${...}``) are refused too: a resolver is code, and the configs a
checkpoint stores are resolved before they are saved, so an honest checkpoint never has one. Module paths are
matched as text before anything is imported, so a refused target is never imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from nag.errors import UserInputError

# Keys Hydra's instantiate reads besides _target_ and _args_ (plain flags, never code).
_HYDRA_FLAGS = {"_partial_", "_recursive_", "_convert_"}


class UntrustedConfigError(UserInputError):
    """A config read from disk names something outside the allow-list."""


def _allowed_bases() -> dict[str, tuple[type, ...]]:
    """Module prefix -> the base classes a target there must derive from (imported lazily: torch is heavy)."""
    import torch
    from torch import nn

    from nag.data.datamodule import ImageDataModule
    from nag.matching import PriorMatching
    from nag.priors import Prior

    schedulers = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    return {
        "nag.priors": (Prior,),
        "nag.matching": (PriorMatching,),
        "nag.nets": (nn.Module,),
        "nag.data": (ImageDataModule,),
        "torch.optim.lr_scheduler": schedulers,
        "nag.schedules": schedulers,
        "torch.optim": (torch.optim.Optimizer,),
    }


def _prefix(module: str, allowed: Mapping[str, Any]) -> str | None:
    """The allowed package ``module`` is (or is inside of); the most specific one wins."""
    hits = [p for p in allowed if module == p or module.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def check_target(target: Any, where: str) -> None:
    """Raise :class:`UntrustedConfigError` unless ``target`` names an allowed class (see the module docstring)."""
    allowed = _allowed_bases()
    if not isinstance(target, str) or "." not in target:
        raise UntrustedConfigError(f"{where}._target_={target!r} is not a 'module.Class' name; refused.")
    module, _, name = target.rpartition(".")
    prefix = _prefix(module, allowed)
    if prefix is None or name.startswith("_"):
        raise UntrustedConfigError(
            f"{where}._target_={target!r} is not on nag's allow-list of classes a stored config may build "
            f"(subclasses of the base classes in {sorted(allowed)}); refused without importing it."
        )
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UntrustedConfigError(f"{where}._target_={target!r} does not exist ({e}).") from None
    bases = allowed[prefix]
    if not (isinstance(obj, type) and issubclass(obj, bases)):
        raise UntrustedConfigError(
            f"{where}._target_={target!r} is not a subclass of {' / '.join(b.__name__ for b in bases)}; refused."
        )


def check_config(cfg: Any, where: str) -> None:
    """Check every ``_target_`` (and every string) in a plain config tree before it is instantiated.

    Args:
        cfg: A plain ``dict``/``list`` tree (e.g. a checkpoint's hyper-parameters), or a leaf.
        where: Its name in messages, e.g. ``checkpoint hyper_parameters.matching``.
    """
    if isinstance(cfg, Mapping):
        for key in cfg:
            if not isinstance(key, str):
                raise UntrustedConfigError(f"{where} has a non-string key {key!r}; refused.")
        if "_target_" in cfg:
            check_target(cfg["_target_"], where)
        for key, value in cfg.items():
            if key == "_target_":
                continue
            if key in _HYDRA_FLAGS:
                if not isinstance(value, bool | str | type(None)):
                    raise UntrustedConfigError(f"{where}.{key}={value!r} must be a flag; refused.")
                continue
            check_config(value, f"{where}.{key}")
    elif isinstance(cfg, list | tuple):
        for i, value in enumerate(cfg):
            check_config(value, f"{where}[{i}]")
    elif isinstance(cfg, str):
        if "${" in cfg:
            raise UntrustedConfigError(
                f"{where}={cfg!r} is an interpolation; a stored config holds resolved values only. Refused."
            )
    elif not isinstance(cfg, int | float | bool | type(None)):
        raise UntrustedConfigError(f"{where} holds a {type(cfg).__name__}, not a plain config value; refused.")


def build_stored(cfg: Any, where: str) -> Any:
    """Instantiate a config read from disk (e.g. the ``data`` of a run's ``.hydra/config.yaml``): resolved
    first, so what is checked is exactly what is built (an ``oc.decode`` interpolation cannot smuggle in a
    target), then checked against the allow-list."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    from nag.errors import instantiate

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig | ListConfig) else cfg
    check_config(plain, where)
    return instantiate(plain)

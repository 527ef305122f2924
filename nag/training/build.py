"""What a composed training config builds: the model (its nets, prior and matching distance injected), the data
module and the Trainer with its callbacks and loggers. ``nag.train`` fits what these return; the benchmark, the
tests and notebooks build the same things through the same two functions."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from nag.config.errors import instantiate


def build_model(cfg: DictConfig) -> Any:
    """The ``NAGModule`` of ``cfg.model``, with ``cfg.prior`` and ``cfg.matching`` injected."""
    return instantiate(cfg.model, prior=cfg.prior, matching=cfg.matching)


def _build_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a mapping of ``_target_`` configs (callbacks, loggers), skipping nulls."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def build_data_and_trainer(cfg: DictConfig, model: Any, extra_callbacks: list[Any] = ()) -> tuple[Any, Any]:
    """The data module and the Trainer of ``cfg`` (with its callbacks and loggers) for ``model``: what
    ``nag.train`` fits, and what ``python -m nag.bench`` times against a plain PyTorch loop."""
    datamodule = instantiate(cfg.data)
    datamodule.check_split_sizes(model.matching.min_batch)
    callbacks = _build_all(cfg.get("callbacks")) + list(extra_callbacks)
    loggers = _build_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, trainer

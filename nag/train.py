"""Training entry point: ``python -m nag.train [overrides]``.

``main`` is a thin ``@hydra.main`` wrapper; ``train(cfg)`` does the work and is what tests and notebooks call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

import nag  # noqa: F401  (registers the nag.* OmegaConf resolvers)
from nag.artifacts import write_json_atomic
from nag.errors import MissingFileError, UserInputError, reported_as_exit

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a mapping of ``_target_`` configs (callbacks, loggers), skipping nulls."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the model described by ``cfg``; return the final metrics.

    The metrics (the trainer's last logged values, plus ``test/*`` when ``cfg.test``) are also written to
    ``<paths.output_dir>/metrics.json``.
    """
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise MissingFileError(f"ckpt_path={cfg.ckpt_path} does not exist; give the path of a .ckpt file to resume.")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model, prior=cfg.prior, matching=cfg.matching)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    log.info("prior: %s | matching: %s", model.prior, model.matching)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test") and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    log.info("metrics: %s", {k: round(v, 5) for k, v in sorted(metrics.items())})
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    with reported_as_exit():
        return optimized(train(cfg), cfg.get("optimized_metric"))


def optimized(metrics: dict[str, float], keys: str | list[str] | None) -> float | tuple[float, ...] | None:
    """What a hyper-parameter sweeper (Optuna) optimises: one metric, or a tuple for a multi-objective search."""
    if keys is None:
        return None
    names = [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in names if k not in metrics]
    if missing:
        raise UserInputError(
            f"optimized_metric names {missing}, which the run did not log; it logged {sorted(metrics)}."
        )
    values = tuple(metrics[k] for k in names)
    return values[0] if isinstance(keys, str) else values


if __name__ == "__main__":
    main()

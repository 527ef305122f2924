"""The run's overrides and final metrics in TensorBoard's HParams tab, at the end of training."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from nag.config.keys import is_machine_key
from nag.runs.overrides import override_key, override_values

#: Final metrics shown in TensorBoard's HParams tab, as ``hparams/<name>``.
SUMMARY_METRICS = (
    "val/recon",
    "val/loss",
    "latent/mmd",
    "latent/code_mean",
    "latent/code_variance",
    "latent/code_kurtosis",
)


class HParamsSummary(L.Callback):
    """At the end of training, log the run's overrides as hparams with its final metrics, so TensorBoard's
    HParams tab lists the jobs of a sweep as one sortable table (``tensorboard --logdir multirun/<date>/<time>``).

    Args:
        overrides: The job's command-line overrides; each becomes one hparam, their joined text another
            (``overrides``), since the run's name may be shortened. None: the running Hydra job's own, read as
            text (``${hydra:overrides.task}`` would resolve an override whose value is an interpolation, e.g.
            ``data.cache_dir='${paths.cache_dir}'``, inside Hydra's read-only config, and fail).
    """

    def __init__(self, overrides: Sequence[str] | None = None) -> None:
        self._given = None if overrides is None else [str(o) for o in overrides]

    @property
    def overrides(self) -> list[str]:
        if self._given is not None:
            return self._given
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        if not HydraConfig.initialized():
            return []
        task = HydraConfig.get().overrides.task
        return [str(o) for o in OmegaConf.to_container(task, resolve=False)]  # type: ignore[union-attr]

    def params(self) -> dict[str, float | str]:
        values = override_values(self.overrides)
        out: dict[str, float | str] = {k: _number_or_text(v) for k, v in values.items() if not is_machine_key(k)}
        out["overrides"] = " ".join(o for o in self.overrides if not is_machine_key(override_key(o)))
        return out

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {
            f"hparams/{k.replace('/', '_')}": float(v)
            for k, v in trainer.callback_metrics.items()
            if k in SUMMARY_METRICS and torch.isfinite(v)
        }
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(self.params(), metrics)


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value

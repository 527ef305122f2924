"""What a training step reports: its loss terms, logged cheaply, and a readable message when they diverge.

Training terms are logged as train/<term>_step every trainer.log_every_n_steps steps (when Lightning writes
to the loggers anyway) and as train/<term>_epoch (and train/<term>, for callbacks and metrics.json) at
every epoch's end, averaged over the epoch's images on this process. The epoch sums are kept here, on the
device, instead of through a self.log call per term and step: that costs about 0.5 ms a call on a CPU (3 %
of a quickstart step, python -m nag.bench) and host work per step on a GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The loss terms of every step, in the order ``NAGModule.loss_terms`` returns them.
TERMS = ("recon", "matching", "loss")


class TermLogging:
    """LightningModule mixin: ``_log_train`` sums a step's terms on the device; the epoch hooks log the means."""

    _train_sums: Tensor | None = None
    _train_images: int = 0

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_images = None, 0

    def _log_train(self, terms: dict[str, Tensor], batch_size: int) -> None:
        values = torch.stack([terms[name].detach().float() for name in TERMS])  # (3,)
        sums = self._train_sums
        self._train_sums = values * batch_size if sums is None else sums + values * batch_size
        self._train_images += batch_size
        if (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0:
            for name, value in zip(TERMS, values, strict=True):
                self.log(f"train/{name}_step", value, on_step=True, on_epoch=False, prog_bar=name == "loss")

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        means = self._train_sums / self._train_images
        for name, value in zip(TERMS, means, strict=True):
            self.log(f"train/{name}_epoch", value, on_step=False, on_epoch=True, prog_bar=name == "loss")
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, logger=False)


def divergence_message(terms: dict[str, Tensor], stage: str, step: int, epoch: int, weight: float) -> str:
    """Which term of a non-finite loss went non-finite (or the weighted matching overflowing), where, and what
    to change."""
    values = {k: float(v.detach()) for k, v in terms.items()}
    bad = [k for k in ("recon", "matching") if not torch.isfinite(terms[k])]
    what = (
        f"the {' and the '.join(bad)} term{'s are' if len(bad) > 1 else ' is'} non-finite"
        if bad
        else f"matching.weight × matching overflows (weight {weight:g})"
    )
    where = {"train": "training", "val": "validation", "test": "testing"}[stage]
    return (
        f"training diverged: in {where} at step {step} (epoch {epoch}) {what} "
        f"(recon={values['recon']:.4g}, matching={values['matching']:.4g}). Lower model.optimizer.lr or "
        "matching.weight, or check the prior's mean and variance."
    )

"""Checkpoints: written atomically, always current, read without running anything they name.

- :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin) writes every checkpoint, best and last, to a
  temporary file in the same directory and renames it into place: a run killed mid-write leaves the previous
  file intact, never a truncated one.
- :class:`LastCheckpoint` keeps ``last.ckpt`` the latest state: every ``every_n_train_steps`` optimizer steps and
  at every epoch end (after validation), refusing to overwrite it with non-finite weights.

Reading a checkpoint (it may come from anyone) is :mod:`nag.runs.checkpoint_file`'s job; building a model from
what it read goes through :mod:`nag.runs.trusted` (see :meth:`nag.training.module.NAGModule.load_from_checkpoint`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

from nag.config.errors import DivergenceError
from nag.config.params import NonNegativeInt, checked
from nag.io.output import atomic_file
from nag.runs.run_dir import LAST

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary sibling file, then ``os.replace`` onto the target (atomic on POSIX)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}.")
        with atomic_file(Path(path), "wb") as f:
            torch.save(checkpoint, f)


def non_finite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or ±inf."""
    named = [*module.named_parameters(), *module.named_buffers()]
    return [name for name, t in named if t.is_floating_point() and not torch.isfinite(t).all()]


class LastCheckpoint(Checkpoint):
    """``<dirpath>/last.ckpt`` is always the latest good state of the run.

    Written every ``every_n_train_steps`` optimizer steps (mid-epoch) and at every training epoch end (after
    that epoch's validation), so a run killed at any moment resumes from at most ``every_n_train_steps`` steps
    back. As a Lightning ``Checkpoint`` callback it runs after the other callbacks of the same hook, so the state
    it saves includes theirs. Before each write the weights are checked: non-finite weights stop the run with
    :class:`~nag.config.errors.DivergenceError` and leave the previous, good ``last.ckpt`` in place.

    Args:
        dirpath: Checkpoint directory.
        every_n_train_steps: Mid-epoch save interval in optimizer steps (0: only at epoch ends).
        filename: File name inside ``dirpath``.
    """

    @checked
    def __init__(self, dirpath: str, every_n_train_steps: NonNegativeInt = 1000, filename: str = LAST.name) -> None:
        self.path = Path(dirpath) / filename
        self.every_n_train_steps = int(every_n_train_steps)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and trainer.global_step > 0:
            self.save(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, pl_module)

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        bad = non_finite_parameters(pl_module)
        if bad:
            raise DivergenceError(
                f"training diverged: after step {trainer.global_step} the weights {', '.join(bad[:3])} are "
                f"non-finite; {self.path} was left at its last good state."
            )
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: resuming needs the optimizer

"""Checkpoints: written atomically, always current, read without running anything they name.

- :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin) writes every checkpoint, best and last, to a
  temporary file in the same directory and renames it into place: a run killed mid-write leaves the previous
  file intact, never a truncated one.
- :class:`LastCheckpoint` keeps ``last.ckpt`` the latest state: every ``every_n_train_steps`` optimizer steps and
  at every epoch end (after validation), refusing to overwrite it with non-finite weights.
- :func:`read_checkpoint` loads a file with torch's ``weights_only`` unpickler and turns every way a file can be
  wrong (missing, text, truncated, not written by nag) into one message naming it. Building a model from what it
  read goes through :mod:`nag.trusted` (see :meth:`nag.module.NAGModule.load_from_checkpoint`).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

from nag.artifacts import atomic_file
from nag.errors import DivergenceError, MissingFileError, UserInputError

log = logging.getLogger(__name__)


class CheckpointError(UserInputError):
    """A checkpoint file that cannot be used: unreadable, not nag's, or of another model."""


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
    :class:`~nag.errors.DivergenceError` and leave the previous, good ``last.ckpt`` in place.

    Args:
        dirpath: Checkpoint directory.
        every_n_train_steps: Mid-epoch save interval in optimizer steps (0: only at epoch ends).
        filename: File name inside ``dirpath``.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 1000, filename: str = "last.ckpt") -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"callbacks.last_checkpoint.every_n_train_steps must be >= 0, got {every_n_train_steps}.")
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


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:200]


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", key: str = "ckpt_path") -> dict[str, Any]:
    """Load a checkpoint written by ``nag.train`` with torch's safe (``weights_only``) unpickler.

    Args:
        path: The ``.ckpt`` file.
        map_location: Where tensors go.
        key: The config key that named the file, for messages.

    Raises:
        MissingFileError: No such file.
        CheckpointError: Not a checkpoint, truncated, holding code objects, or not written by nag.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{key}={path} does not exist; give a .ckpt file written by nag.train.")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(
                f"{key}={path} holds Python objects that torch's safe loader refuses to build "
                f"({_first_line(e)}); nag will not unpickle it."
            ) from None
        raise CheckpointError(f"{key}={path} is not a checkpoint (it could not be unpickled: {e}).") from None
    except Exception as e:  # torch reports a text file, a truncated zip, a wrong magic number in many ways
        raise CheckpointError(
            f"{key}={path} is not a readable checkpoint: it is truncated or not a .ckpt file "
            f"({type(e).__name__}: {_first_line(e) or 'empty file'})."
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{key}={path} is not a Lightning checkpoint (no state_dict).")
    if not isinstance(ckpt.get("hyper_parameters"), dict):
        raise CheckpointError(
            f"{key}={path} was not written by nag.train: it stores no hyper-parameters to rebuild the model from."
        )
    return ckpt

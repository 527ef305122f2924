"""What the TensorBoard callbacks share: the writer, fixed validation inputs, the display size, notes."""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from nag.model.inference import batched

log = logging.getLogger(__name__)


def tensorboard_writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the trainer's TensorBoard logger, or None when there is none."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def fixed_images(trainer: L.Trainer, n: int, offset: int = 0) -> Tensor:
    """Validation images ``offset .. offset+n-1`` of the trainer's data module, ``(n, 3, H, W)``."""
    return trainer.datamodule.fixed_batch("val", n, offset)[0]


#: Faces smaller than this are enlarged in TensorBoard (by an integer factor, nearest neighbour: pixels stay sharp).
DISPLAY_SIZE = 64


def upscaled(grid: Tensor, trainer: L.Trainer) -> Tensor:
    """``grid (3, H, W)`` enlarged so each face shows at least :data:`DISPLAY_SIZE` px, pixels kept sharp."""
    factor = max(1, DISPLAY_SIZE // int(trainer.datamodule.image_size))
    if factor == 1:
        return grid
    return grid.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


def encode_batched(module: L.LightningModule, x: Tensor, batch_size: int = 256) -> Tensor:
    """Codes of images ``x (N, 3, H, W)`` encoded in batches on the module's device: ``(N, d)`` float there."""
    return batched(module.encode, x, module.device, batch_size, to_cpu=False)


def n_val_images(trainer: L.Trainer) -> int:
    return len(trainer.datamodule.dataset("val"))


class SmallSplitNote:
    """Says once per callback that a figure uses fewer validation images than configured."""

    _noted = False

    def note_once(self, message: str) -> None:
        if not self._noted:
            self._noted = True
            log.warning("%s: %s", type(self).__name__, message)

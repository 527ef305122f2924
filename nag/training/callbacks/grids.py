"""The image grids drawn at every validation epoch: reconstructions, interpolation, prior samples, probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import lightning as L
import torch
from annotated_types import Ge
from torch import Tensor

from nag.config.params import Count, checked
from nag.model.priors import fixed_draw, translated
from nag.training.callbacks.common import SmallSplitNote, fixed_images, n_val_images, tensorboard_writer, upscaled
from nag.training.figures import image_grid, interpolation_grid, probe_tag, reconstruction_grid


class ValidationFigure(L.Callback):
    """Base class: at each validation epoch end (not during the sanity check, and only with a TensorBoard
    logger) call ``figures`` under ``torch.no_grad`` with the module in eval mode, and add the returned grids
    to TensorBoard.

    Args:
        every_n_epochs: Draw every n-th validation epoch.
    """

    @checked
    def __init__(self, every_n_epochs: Count = 1) -> None:
        self.every_n_epochs = every_n_epochs

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        raise NotImplementedError

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return  # nothing to draw into, or not this epoch
        if not trainer.is_global_zero:
            return  # under DDP, one process draws
        with torch.no_grad():
            grids = self.figures(trainer, pl_module)
        for tag, grid in grids.items():
            writer.add_image(tag, upscaled(grid.float().cpu(), trainer), global_step=trainer.global_step)


class ReconstructionGrid(ValidationFigure, SmallSplitNote):
    """``images/reconstructions``: n validation originals (top row) above their reconstructions (fewer when
    the validation split is smaller)."""

    @checked
    def __init__(self, n: Count = 8, every_n_epochs: Count = 1) -> None:
        super().__init__(every_n_epochs)
        self.n = n

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        n = min(self.n, n_val_images(trainer))
        if n < self.n:
            self.note_once(f"the validation split has {n} image(s); reconstructing {n} instead of {self.n}")
        return {"images/reconstructions": reconstruction_grid(module, fixed_images(trainer, n).to(module.device))}


class InterpolationGrid(ValidationFigure, SmallSplitNote):
    """``images/interpolation``: row b decodes z = (1 − i/(steps−1))·z_A + (i/(steps−1))·z_B, i = 0..steps−1,
    between fixed validation batches A (images 0..P−1) and B (images P..2P−1), so columns 0 and steps−1
    reconstruct A and B. P = n_pairs, or half the validation split when that is smaller (none below 2 images)."""

    @checked
    def __init__(self, n_pairs: Count = 6, steps: Annotated[int, Ge(2)] = 11, every_n_epochs: Count = 1) -> None:
        super().__init__(every_n_epochs)
        self.n_pairs, self.steps = n_pairs, steps

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        pairs = min(self.n_pairs, n_val_images(trainer) // 2)
        if pairs < self.n_pairs:
            self.note_once(
                f"the validation split has {n_val_images(trainer)} image(s): "
                + (f"interpolating {pairs} pair(s) instead of {self.n_pairs}" if pairs else "no interpolation grid")
            )
        if pairs == 0:
            return {}
        a = fixed_images(trainer, pairs).to(module.device)
        b = fixed_images(trainer, pairs, offset=pairs).to(module.device)
        return {"images/interpolation": interpolation_grid(module, a, b, self.steps)}


class PriorSamples(ValidationFigure):
    """``images/samples``: decoded draws of the module's prior, the same draws every epoch."""

    @checked
    def __init__(self, n: Count = 64, nrow: Count = 8, seed: int = 0, every_n_epochs: Count = 1) -> None:
        super().__init__(every_n_epochs)
        self.n, self.nrow, self.seed = n, nrow, seed

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        z = fixed_draw(module.prior, self.n, self.seed).to(module.device)  # (n, d)
        return {"images/samples": image_grid(module.decode(z), self.nrow)}


class PriorProbes(PriorSamples):
    """``images/probe_mean{m:+g}``: the prior translated so its mean is m in every dimension (the report's
    +100 / −100 probes), decoded from the same noise as the samples."""

    @checked
    def __init__(
        self,
        means: Sequence[float] = (100.0, -100.0),
        n: Count = 16,
        nrow: Count = 8,
        seed: int = 0,
        every_n_epochs: Count = 1,
    ) -> None:
        super().__init__(n, nrow, seed, every_n_epochs)
        self.means = [float(m) for m in means]

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        z = fixed_draw(module.prior, self.n, self.seed).to(module.device)  # (n, d)
        return {
            f"images/{probe_tag(m)}": image_grid(module.decode(translated(z, module.prior, m)), self.nrow)
            for m in self.means
        }

"""Figures and latent diagnostics written to TensorBoard at the end of every validation epoch.

Every callback uses fixed inputs (the first validation images) and fixed noise (a seeded generator), so
grids from different epochs, and from different runs on the same data, show the same faces and codes.
They read only the module's public API: ``encode``, ``decode``, ``interpolate``, ``prior``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from nag.model.latent_fit import latent_fit
from nag.model.priors import fixed_draw, translated
from nag.runs.overrides import override_key, override_values
from nag.training.figures import (
    attribute_directions,
    chosen,
    edit_grid,
    image_grid,
    interpolation_grid,
    probe_tag,
    reconstruction_grid,
)

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


@torch.no_grad()
def encode_batched(module: L.LightningModule, x: Tensor, batch_size: int = 256) -> Tensor:
    """Codes of images ``x (N, 3, H, W)`` encoded in batches on the module's device: ``(N, d)`` float there."""
    return torch.cat([module.encode(x[i : i + batch_size].to(module.device)).float()
                      for i in range(0, len(x), batch_size)])  # fmt: skip


def n_val_images(trainer: L.Trainer) -> int:
    return len(trainer.datamodule.dataset("val"))


class SmallSplitNote:
    """Says once per callback that a figure uses fewer validation images than configured."""

    _noted = False

    def note_once(self, message: str) -> None:
        if not self._noted:
            self._noted = True
            log.warning("%s: %s", type(self).__name__, message)


class ValidationFigure(L.Callback):
    """Base class: at each validation epoch end (not during the sanity check, and only with a TensorBoard
    logger) call ``figures`` under ``torch.no_grad`` with the module in eval mode, and add the returned grids
    to TensorBoard.

    Args:
        every_n_epochs: Draw every n-th validation epoch.
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"callbacks.*.every_n_epochs must be >= 1, got {every_n_epochs}.")
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

    def __init__(self, n: int = 8, every_n_epochs: int = 1) -> None:
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

    def __init__(self, n_pairs: int = 6, steps: int = 11, every_n_epochs: int = 1) -> None:
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

    def __init__(self, n: int = 64, nrow: int = 8, seed: int = 0, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        self.n, self.nrow, self.seed = n, nrow, seed

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        z = fixed_draw(module.prior, self.n, self.seed).to(module.device)  # (n, d)
        return {"images/samples": image_grid(module.decode(z), self.nrow)}


class PriorProbes(PriorSamples):
    """``images/probe_mean{m:+g}``: the prior translated so its mean is m in every dimension (the report's
    +100 / −100 probes), decoded from the same noise as the samples."""

    def __init__(self, means: Sequence[float] = (100.0, -100.0), n: int = 16, nrow: int = 8, seed: int = 0,
                 every_n_epochs: int = 1) -> None:  # fmt: skip
        super().__init__(n, nrow, seed, every_n_epochs)
        self.means = [float(m) for m in means]

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        z = fixed_draw(module.prior, self.n, self.seed).to(module.device)  # (n, d)
        return {
            f"images/{probe_tag(m)}": image_grid(module.decode(translated(z, module.prior, m)), self.nrow)
            for m in self.means
        }


#: TensorBoard's Custom Scalars tab: each code statistic in one chart with the prior's value, and the loss terms.
CUSTOM_SCALARS = {
    "latent fit (codes vs prior)": {
        "mean": ["Multiline", ["latent/code_mean", "latent/prior_mean"]],
        "variance": ["Multiline", ["latent/code_variance", "latent/prior_variance"]],
        "kurtosis": ["Multiline", ["latent/code_kurtosis", "latent/prior_kurtosis"]],
        "held-out MMD²": ["Multiline", ["latent/mmd"]],
    },
    "loss": {
        "reconstruction": ["Multiline", ["train/recon_epoch", "val/recon"]],
        "matching": ["Multiline", ["train/matching_epoch", "val/matching"]],
        "total": ["Multiline", ["train/loss_epoch", "val/loss"]],
    },
}


class LatentDiagnostics(L.Callback, SmallSplitNote):
    """How well held-out codes match the prior, every validation epoch.

    Logs a histogram ``latent/codes`` of n validation codes and the scalars ``latent/code_{mean,variance,
    kurtosis}`` (averaged over dimensions) beside ``latent/prior_{mean,variance,kurtosis}``, and
    ``latent/mmd``, the unbiased multi-scale IMQ MMD² between the codes and n fixed prior draws.

    Args:
        n: Validation images encoded (and prior draws compared against).
        batch_size: Encoding batch size.
        seed: Seed of the prior draws.
    """

    def __init__(self, n: int = 512, batch_size: int = 256, seed: int = 0) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None and trainer.is_global_zero:
            writer.add_custom_scalars(CUSTOM_SCALARS)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return  # under DDP, one process measures (the model is the same on every process)
        n = min(self.n, n_val_images(trainer))
        if n < 2:
            self.note_once(f"the validation split has {n} image; the code statistics need at least 2")
            return
        z = encode_batched(pl_module, fixed_images(trainer, n), self.batch_size)  # (n, d)
        with torch.no_grad():
            fit = latent_fit(z, pl_module.prior, seed=self.seed)  # the same measure nag.evaluate reports
        prior = pl_module.prior
        stats = {
            **{f"latent/{k}": fit[k] for k in ("code_mean", "code_variance", "code_kurtosis", "mmd")},
            "latent/prior_mean": prior.mean.mean().item(),
            "latent/prior_variance": prior.variance.mean().item(),
            "latent/prior_kurtosis": prior.kurtosis.mean().item(),
        }
        for name, value in stats.items():
            pl_module.log(name, float(value), on_epoch=True, rank_zero_only=True)
        writer = tensorboard_writer(trainer)
        if writer is not None:
            writer.add_histogram("latent/codes", z.cpu(), global_step=trainer.global_step)


class AttributeEdits(ValidationFigure):
    """``images/attribute_edits`` (optional, ``callbacks=with_edits``): rows = attributes for each of ``faces``
    validation faces, columns = the code moved by −2 … +2 times the attribute's direction, the directions
    estimated each epoch from the codes of ``n_train`` training images.

    Args:
        attributes: Attributes to show, where the dataset has them (else its first six).
        faces: Validation faces edited.
        n_train: Training images the directions are estimated from.
    """

    def __init__(self, attributes: Sequence[str] = ("Eyeglasses", "Smiling", "Blond_Hair", "Sunglasses"),
                 faces: int = 2, n_train: int = 1000, every_n_epochs: int = 1) -> None:  # fmt: skip
        super().__init__(every_n_epochs)
        self.attributes, self.faces, self.n_train = list(attributes), faces, n_train

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        dm = trainer.datamodule
        if not dm.attribute_names:
            return {}
        x, a = dm.fixed_batch("train", min(self.n_train, len(dm.dataset("train"))))
        z = encode_batched(module, x)  # (n, d)
        shown = chosen(attribute_directions(z, a.to(z.device), dm.attribute_names), self.attributes)
        faces = fixed_images(trainer, min(self.faces, n_val_images(trainer))).to(module.device)
        return {"images/attribute_edits": edit_grid(module, faces, shown)} if shown else {}


class LatentProjector(L.Callback):
    """At the end of training, the codes of ``n`` validation faces in TensorBoard's Projector tab, with their
    thumbnails and attribute labels, so the latent space can be coloured by attribute (PCA, t-SNE, UMAP there).

    Args:
        n: Validation faces embedded (fewer when the split is smaller).
        tag: The embedding's name.
    """

    def __init__(self, n: int = 500, tag: str = "latent_codes") -> None:
        self.n, self.tag = n, tag

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        x, attributes = dm.fixed_batch("val", min(self.n, n_val_images(trainer)))
        z = encode_batched(pl_module, x).cpu()  # (n, d)
        names = list(dm.attribute_names)
        if names:
            header = ["index", *names]
            metadata = [[str(i), *("yes" if a > 0.5 else "no" for a in row)] for i, row in enumerate(attributes)]
        else:
            header, metadata = None, [str(i) for i in range(len(x))]
        writer.add_embedding(z, metadata=metadata, metadata_header=header, label_img=x, tag=self.tag,
                             global_step=trainer.global_step)  # fmt: skip


#: Final metrics shown in TensorBoard's HParams tab, as ``hparams/<name>``.
SUMMARY_METRICS = ("val/recon", "val/loss", "latent/mmd", "latent/code_mean", "latent/code_variance",
                   "latent/code_kurtosis")  # fmt: skip
#: Overrides that are paths or per-invocation, not hyper-parameters.
NOT_HPARAMS = ("ckpt_path", "resume", "paths.", "data.root", "data.cache_dir", "hydra.")


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
        out: dict[str, float | str] = {
            k: _number_or_text(v) for k, v in values.items() if not k.startswith(NOT_HPARAMS)
        }
        out["overrides"] = " ".join(o for o in self.overrides if not override_key(o).startswith(NOT_HPARAMS))
        return out

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {f"hparams/{k.replace('/', '_')}": float(v) for k, v in trainer.callback_metrics.items()
                   if k in SUMMARY_METRICS and torch.isfinite(v)}  # fmt: skip
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(self.params(), metrics)


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value

"""How well held-out codes match the prior, every validation epoch (scalars, a histogram, custom scalars)."""

from __future__ import annotations

import lightning as L
import torch

from nag.config.params import Count, checked
from nag.model.latent_fit import latent_fit
from nag.training.callbacks.common import SmallSplitNote, encode_batched, fixed_images, n_val_images, tensorboard_writer

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

    @checked
    def __init__(self, n: Count = 512, batch_size: Count = 256, seed: int = 0) -> None:
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

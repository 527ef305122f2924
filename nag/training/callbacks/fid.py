"""``callbacks=with_fid``: FID, KID and precision/recall of a small sample, every few validation epochs, in
TensorBoard (``fid/*``). The reference (the first ``n`` training images' Inception features) is computed at the first
use and cached beside the data like ``nag.evaluate``'s; the samples are the same noise every time (``seed``), so
the curve shows the model, not the draw. FID at a small ``n`` reads high: compare it along one run, or between runs
at the same ``n``, not with published values (``python -m nag.evaluate`` at ``metrics.fid.n_samples=10000``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from nag.config.params import Count, checked
from nag.model.inference import batched
from nag.model.priors import fixed_draw
from nag.training.callbacks.common import tensorboard_writer

log = logging.getLogger(__name__)


class TrainingFid(L.Callback):
    """Logs ``fid/fid``, ``fid/kid``, ``fid/precision``, ``fid/recall``, ``fid/density``, ``fid/coverage`` of ``n``
    decoded prior samples against ``n`` training images, every ``every_n_epochs`` validation epochs (rank zero,
    with a TensorBoard logger; not during the sanity check). Without Inception weights: one notice, then nothing.

    Args:
        n: Samples (and reference images) per measurement.
        every_n_epochs: Measure every n-th validation epoch.
        seed: The samples' noise.
        weights_path: Inception weights (default: as ``nag.evaluate`` finds them).
    """

    @checked
    def __init__(
        self, n: Count = 256, every_n_epochs: Count = 5, seed: int = 0, weights_path: str | None = None
    ) -> None:
        self.n, self.every_n_epochs, self.seed, self.weights_path = n, every_n_epochs, seed, weights_path
        self._setup: Any = None
        self._unavailable = False

    def _fid(self, trainer: L.Trainer, module: L.LightningModule) -> Any:
        """The extractor and the reference, built once (None when there are no weights)."""
        from nag.metrics.fidelity import reference, reference_file
        from nag.metrics.inception import load_features

        if self._setup is None and not self._unavailable:
            dm: Any = getattr(trainer, "datamodule", None)
            if dm is None or not hasattr(dm, "split_cache"):
                log.warning("callbacks.fid: no nag data module to take the real reference from; FID not logged")
                self._unavailable = True
                return None
            cache = Path(dm.cache_dir) / "fid"
            features = load_features({"weights_path": self.weights_path}, cache, module.device)
            if features is None:
                self._unavailable = True
                return None
            n = min(self.n, len(dm.dataset("train")))
            path = reference_file(cache, dm.split_cache("train").path.name, "train", n, features.digest)
            self._setup = (features, reference(dm.fixed_batch("train", n)[0], features, path), n)
        return self._setup

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from nag.metrics.fidelity import fidelity

        writer = tensorboard_writer(trainer)
        if writer is None or trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return  # under DDP, one process measures
        setup = self._fid(trainer, pl_module)
        if setup is None:
            return
        features, ref, n = setup
        with torch.no_grad():
            z = fixed_draw(pl_module.prior, n, self.seed)  # type: ignore[attr-defined]
            images = batched(pl_module.decode, z, pl_module.device)  # type: ignore[attr-defined]
        scores = fidelity(ref, features(images), self.seed)
        for name in ("fid", "kid", "precision", "recall", "density", "coverage"):
            writer.add_scalar(f"fid/{name}", scores[name], global_step=trainer.global_step)
        log.info("epoch %d: FID %.2f at n=%d (small n: compare along the run)", trainer.current_epoch, scores["fid"], n)

"""The training loop against plain PyTorch: what Lightning, the callbacks and the logging cost per image.

Both loops train the same nets on the same cached batches with the same loss and optimizer, built from the same
composed config (``experiment=quickstart`` by default). The plain loop is the shortest correct PyTorch loop;
nag's is ``nag.train``'s own Trainer (:func:`nag.training.build.build_data_and_trainer`: progress bar, logging,
checkpointing and every default callback). Each loop's speed is its best epoch (the first one warms up).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, open_dict

from nag.config.compose import compose_run
from nag.config.errors import instantiate
from nag.training.build import build_model


def default_model(workdir: Path, image_size: int, matching: str = "none", latent_dim: int = 64) -> L.LightningModule:
    """The default model of ``conf/`` (the report's autoencoder) at ``image_size``, with ``matching``."""
    cfg = compose_run(
        [f"data.image_size={image_size}", f"matching={matching}", f"model.latent_dim={latent_dim}"], workdir
    )
    return build_model(cfg)


class EpochClock(L.Callback):
    """Wall time of every training epoch (start of its first batch fetch to the start of the next epoch, or the
    end of training: what happens at an epoch's end, checkpointing included, counts) and of every validation
    epoch (its figures included: this callback runs after the figure callbacks)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.cpu_starts: list[float] = []  # process CPU time: what the machine's other tenants do not steal
        self.val: list[float] = []
        self.images = 0
        self._val_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if len(self.starts) == 1:
            self.images += batch[0].shape[0]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.val.append(time.perf_counter() - self._val_start)

    @property
    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]

    @property
    def cpu_epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.cpu_starts, self.cpu_starts[1:], strict=False)]


def plain_epochs(cfg: DictConfig, epochs: int) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds of each epoch of the plain PyTorch loop, and the images of one epoch."""
    L.seed_everything(0, verbose=False)
    model = build_model(cfg)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    device = torch.device("cuda" if cfg.trainer.accelerator == "gpu" else "cpu")
    model.to(device).train()
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    times, cpu_times, images = [], [], 0
    for _ in range(epochs):
        start, cpu_start, images = time.perf_counter(), time.process_time(), 0
        for x, _ in data.train_dataloader():
            x = x.to(device, non_blocking=True)
            loss = model.loss_terms(x)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return times, cpu_times, images


def nag_epochs(cfg: DictConfig, epochs: int, validate: bool) -> EpochClock:
    """Fit ``cfg``'s model with ``nag.train``'s own data module and Trainer for ``epochs`` epochs; validation (and
    the figures drawn with it) only if ``validate``."""
    from nag.training.build import build_data_and_trainer

    with open_dict(cfg):
        cfg.trainer.max_epochs = epochs
        cfg.trainer.num_sanity_val_steps = 0
        if not validate:
            cfg.trainer.limit_val_batches = 0
    L.seed_everything(0, verbose=False)
    model = build_model(cfg)
    clock = EpochClock()
    data, trainer = build_data_and_trainer(cfg, model, extra_callbacks=[clock])
    trainer.fit(model, datamodule=data)
    return clock


@dataclass
class LoopResult:
    plain_images_per_s: float
    nag_images_per_s: float
    ratio: float  # nag / plain images/s, median over adjacent pairs
    pair_ratios: list[float]  # each pair's ratio: how much the machine drifted
    cpu_ratio: float  # the same in images per CPU-second of this process (less sensitive to other tenants)
    cpu_pair_ratios: list[float]
    epoch_s: float  # a full epoch of nag.train: training, validation and every figure
    bare_epoch_s: float  # the same without callbacks or loggers
    validation_s: float  # validation and figures of one epoch
    bare_validation_s: float  # validation alone

    @property
    def callbacks_share(self) -> float:
        """The callbacks' and loggers' share of a full epoch (training, validation and figures)."""
        return max(0.0, 1 - self.bare_epoch_s / self.epoch_s)


def measure(overrides: list[str], workdir: Path, epochs: int = 2, repeats: int = 3) -> LoopResult:
    """Time the plain loop, nag's Trainer with and without its callbacks, and a validated epoch.

    This machine's speed drifts by 10 % or more within minutes, so the plain loop and nag's Trainer are run in
    adjacent pairs, ``repeats`` times; the ratio is the median of the pairs' ratios (each loop's best epoch).
    """

    def cfg(*extra: str, out: str) -> DictConfig:
        return compose_run([*overrides, *extra], workdir / out)

    pairs, cpu_pairs = [], []
    for r in range(repeats):
        plain, plain_cpu, images = plain_epochs(cfg(out=f"plain{r}"), epochs)
        nag = nag_epochs(cfg(out=f"nag{r}"), epochs, validate=False)
        pairs.append((images / min(plain), nag.images / min(nag.epochs)))
        cpu_pairs.append((images / min(plain_cpu), nag.images / min(nag.cpu_epochs)))
    bare_cfg = cfg(
        "callbacks=none",
        "logger=none",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
        "trainer.enable_model_summary=false",
        out="bare",
    )
    bare = nag_epochs(bare_cfg, epochs, validate=True)
    full = nag_epochs(cfg(out="full"), epochs, validate=True)
    return LoopResult(
        plain_images_per_s=statistics.median(p for p, _ in pairs),
        nag_images_per_s=statistics.median(n for _, n in pairs),
        ratio=statistics.median(n / p for p, n in pairs),
        pair_ratios=[n / p for p, n in pairs],
        cpu_ratio=statistics.median(n / p for p, n in cpu_pairs),
        cpu_pair_ratios=[n / p for p, n in cpu_pairs],
        epoch_s=min(full.epochs),
        bare_epoch_s=min(bare.epochs),
        validation_s=min(full.val),
        bare_validation_s=min(bare.val),
    )

"""The LightningModule: orchestrates encoder, decoder, prior and matching distance; holds no maths itself.

Collaborators arrive as Hydra configs (``_target_`` mappings) and are instantiated here. That keeps every
checkpoint self-contained: ``NAGModule.load_from_checkpoint(path)`` rebuilds the same nets, the same prior
(its parameters are buffers in the state dict too) and the same matching distance, with no config at hand.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from nag.config.errors import ConfigError, DivergenceError
from nag.config.params import BoolOrAuto, Count, Keys, NonNegative, Positive, checked
from nag.model.matching import PriorMatching
from nag.model.priors import Prior
from nag.model.reconstruction import frequency_term, ssim_term, weighted_mse
from nag.runs.trusted import CHECKPOINT_ROLES, check_config
from nag.training.distributed import gather_codes
from nag.training.term_logging import TermLogging, divergence_message


def _plain(cfg: Mapping[str, Any] | DictConfig | None) -> dict[str, Any] | None:
    """Resolved plain-dict copy of a config: what the checkpoint stores (safe to load with weights_only)."""
    if cfg is None:
        return None
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


class NAGModule(TermLogging, L.LightningModule):
    """Autoencoder with a prior-matching term: ``loss = recon + matching.weight * matching(z, prior)``.

    Args:
        latent_dim: Code size; must agree with the encoder, decoder and prior.
        encoder, decoder: Configs of the nets (``nag.model.nets.Encoder`` / ``Decoder``).
        prior: Config of the prior (``conf/prior``).
        matching: Config of the matching distance (``conf/matching``).
        optimizer: Config of a partial optimizer (``_partial_: true``), called with the parameters.
        scheduler: Optional config of a partial LR scheduler, called with the optimizer.
        compile: ``torch.compile`` the encoder and decoder when training starts (in place: the state dict, hence
            every checkpoint, is the same with and without it).
        channels_last: Train in the channels-last memory format (faster convolutions on GPUs with tensor
            cores); ``"auto"``: on CUDA devices only.
        recon_emphasis: α of the rare-pixel-weighted reconstruction
            (:func:`~nag.model.reconstruction.weighted_mse`); 0: the plain MSE.
        recon_ssim: Weight of 1 − SSIM added to the reconstruction term (:func:`~nag.model.reconstruction.ssim_term`).
        recon_frequency: Weight of the focal frequency loss added to it
            (:func:`~nag.model.reconstruction.frequency_term`).

    ``compile`` and ``channels_last`` are how the run is computed, not what it computes: they are not stored in
    checkpoints, and a checkpoint loads the same whatever they are.
    """

    @checked
    def __init__(
        self,
        latent_dim: Count,
        encoder: Mapping[str, Any],
        decoder: Mapping[str, Any],
        prior: Mapping[str, Any],
        matching: Mapping[str, Any],
        # torch's optimizers are not nag's to annotate: the keys of theirs that nag's configs set are declared here
        optimizer: Annotated[Mapping[str, Any], Keys(lr=Positive, weight_decay=NonNegative)],
        scheduler: Mapping[str, Any] | None = None,
        compile: bool = False,
        channels_last: BoolOrAuto = "auto",
        recon_emphasis: NonNegative = 0.0,
        recon_ssim: NonNegative = 0.0,
        recon_frequency: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        self.compile_nets, self.channels_last = bool(compile), channels_last
        self._memory_format = torch.contiguous_format
        hparams = {
            "latent_dim": latent_dim,
            "encoder": _plain(encoder),
            "decoder": _plain(decoder),
            "prior": _plain(prior),
            "matching": _plain(matching),
            "optimizer": _plain(optimizer),
            "scheduler": _plain(scheduler),
            "recon_emphasis": float(recon_emphasis),
            "recon_ssim": float(recon_ssim),
            "recon_frequency": float(recon_frequency),
        }
        # The same configs come back from every checkpoint: nothing outside nag.runs.trusted's allow-list is built,
        # and each part is of its kind (an encoder is one of nag's nets, a prior a prior, ...).
        check_config(hparams, "model", roles=CHECKPOINT_ROLES)
        # logger=False: the run's hparams go to TensorBoard once, with its final metrics (callbacks.HParamsSummary).
        self.save_hyperparameters(hparams, logger=False)
        self.encoder = instantiate(self.hparams.encoder)
        self.decoder = instantiate(self.hparams.decoder)
        self.prior: Prior = instantiate(self.hparams.prior)
        self.matching: PriorMatching = instantiate(self.hparams.matching)
        self._draw_seed: int | None = None  # see on_fit_start
        self._train_sums: Tensor | None = None  # see _log_train
        self._train_images = 0
        # Lets Lightning's model summary show input/output sizes and FLOPs (a forward of two blank images).
        size = getattr(self.encoder, "image_size", None)
        self.example_input_array = torch.zeros(2, 3, size, size) if size else None
        for key, dim in (
            ("encoder", self.encoder.latent_dim),
            ("decoder", self.decoder.latent_dim),
            ("prior", self.prior.dim),
        ):
            if dim != latent_dim:
                raise ConfigError(f"NAGModule: the {key}'s latent dimension {dim} differs from {latent_dim=}.")

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: Any = None, strict: bool = True, **kwargs: Any
    ) -> NAGModule:
        """Rebuild a trained model from a checkpoint written by ``nag.train``, safely
        (:func:`nag.training.loading.load_module`: read by :mod:`nag.runs.checkpoint_file`, built only from
        :mod:`nag.runs.trusted`'s allow-list, every problem one message).

        Args:
            checkpoint_path: The ``.ckpt`` file.
            map_location: Device of the returned model (default: CPU).
            strict: Require the state dict to match exactly.
            **kwargs: Hyper-parameters to replace (e.g. ``prior={...}``: the model then samples from that prior,
                not the stored one), checked like the stored ones, and
                ``compile`` / ``channels_last`` (how to compute, not stored).
        """
        from nag.training.loading import load_module

        return load_module(cls, checkpoint_path, map_location, strict, **kwargs)

    def load_weights(self, state_dict: Mapping[str, Tensor], source: str, strict: bool = True) -> None:
        """``load_state_dict`` with one readable message when the weights belong to another architecture
        (:func:`nag.training.loading.load_weights`)."""
        from nag.training.loading import load_weights

        load_weights(self, state_dict, source, strict)

    # --- the API that callbacks, evaluation and notebooks use -------------------------------------------

    def encode(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` in [0, 1] → codes ``(B, d)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Codes ``(B, d)`` → images ``(B, 3, H, W)`` in [0, 1]."""
        return self.decoder(z)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction (what ``model(x)`` and Lightning's model summary run)."""
        return self.reconstruct(x)

    def sample(self, n: int, prior: Prior | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` draws of ``prior`` (default: the prior the model was trained with) → ``(n, 3, H, W)``."""
        z = (prior if prior is not None else self.prior).sample(n, generator=generator).to(self.device)
        return self.decode(z)

    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 11) -> Tensor:
        """Decode z = (1 − t)·z1 + t·z2 for t = 0, 1/(steps−1), ..., 1 → ``(B, steps, 3, H, W)``."""
        if x1.shape != x2.shape:
            raise ValueError(
                f"interpolate needs two batches of the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}."
            )
        if steps < 2:
            raise ValueError(f"interpolate needs steps >= 2, got {steps}.")
        z1, z2 = self.encode(x1), self.encode(x2)  # (B, d)
        t = torch.linspace(0, 1, steps, device=z1.device).view(1, steps, 1)  # (1, S, 1)
        z = (1 - t) * z1.unsqueeze(1) + t * z2.unsqueeze(1)  # (B, S, d)
        images = self.decode(z.flatten(0, 1))  # (B*S, 3, H, W)
        return images.view(x1.shape[0], steps, *images.shape[1:])

    # --- training ---------------------------------------------------------------------------------------

    def loss_terms(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Named loss terms of a batch: ``recon`` (per-pixel MSE; weighted by
        :func:`~nag.model.reconstruction.weighted_mse` when ``recon_emphasis`` > 0; plus ``recon_ssim`` × 1 − SSIM
        and ``recon_frequency`` × the focal frequency loss when those are > 0), ``matching`` and ``loss``;
        ``generator`` fixes the prior samples (and projections) the matching term draws."""
        z = self.encode(x)  # (B, d)
        x_hat = self.decode(z)  # (B, 3, H, W)
        h = self.hparams
        alpha, w_ssim, w_freq = h.recon_emphasis, h.recon_ssim, h.recon_frequency
        x_hat32, x32 = x_hat.float(), x.float()
        recon = weighted_mse(x_hat32, x32, alpha) if alpha else F.mse_loss(x_hat32, x32)
        if w_ssim:
            recon = recon + w_ssim * ssim_term(x_hat32, x32)
        if w_freq:
            recon = recon + w_freq * frequency_term(x_hat32, x32)
        z_match = gather_codes(z) if self.matching.global_batch else z  # (W·B, d) under DDP
        matching = self.matching(z_match, self.prior, generator=generator)
        return {"recon": recon, "matching": matching, "loss": recon + self.matching.weight * matching}

    # The prior samples of training step t are drawn from a generator seeded with (draw seed, t): the same on
    # every process under DDP (so the global-batch distance is one estimate, not one per process), and the same
    # again after a resume. The draw seed is picked once per run on rank 0 and stored in the checkpoints.

    # --- how the steps are computed: memory format and compilation ----------------------------------------

    def configure_model(self) -> None:
        """Called by Lightning on the training device before the optimizers exist."""
        device = self.trainer.strategy.root_device if self._trainer is not None else self.device
        if self.channels_last is True or (self.channels_last == "auto" and device.type == "cuda"):
            self._memory_format = torch.channels_last
            self.to(memory_format=torch.channels_last)
        if self.compile_nets and not getattr(self.encoder, "_compiled_call_impl", None):
            # nn.Module.compile compiles in place: parameter names, hence checkpoints, do not change. Train and
            # eval mode each compile once (batch norm differs); later epochs reuse both.
            self.encoder.compile()
            self.decoder.compile()

    def on_fit_start(self) -> None:
        if self._draw_seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            self._draw_seed = int(self.trainer.strategy.broadcast(seed, src=0))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nag_draw_seed"] = self._draw_seed

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._draw_seed = checkpoint.get("nag_draw_seed", self._draw_seed)

    def _train_generator(self) -> torch.Generator | None:
        if self._draw_seed is None:
            return None
        return torch.Generator().manual_seed((self._draw_seed * 1_000_003 + self.global_step) % 2**63)

    def _step(self, batch: tuple[Tensor, Tensor] | Tensor, stage: str, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        x = x.contiguous(memory_format=self._memory_format)
        on_step = stage == "train"
        # Validation/test draw the same prior samples for the same batch every epoch, so val/loss (which picks
        # the best checkpoint) changes only when the model does.
        generator = self._train_generator() if on_step else torch.Generator().manual_seed(batch_idx)
        terms = self.loss_terms(x, generator)
        if not torch.isfinite(terms["loss"]):
            raise DivergenceError(
                divergence_message(terms, stage, self.global_step, self.current_epoch, self.matching.weight)
            )
        if on_step:
            self._log_train(terms, x.shape[0])
            return terms["loss"]
        for name, value in terms.items():
            # Evaluation metrics are averaged over the processes (DDP) once per epoch.
            self.log(
                f"{stage}/{name}", value, on_epoch=True, prog_bar=name == "loss", batch_size=x.shape[0], sync_dist=True
            )
        return terms["loss"]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val", batch_idx)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test", batch_idx)

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The configured optimizer over the model's parameters (what training steps and what a checkpoint's
        stored optimizer state is checked against)."""
        return instantiate(self.hparams.optimizer)(params=self.parameters())

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # It lowers the rate when a metric stops improving: the one the best checkpoint follows, read once per
            # epoch after validation (Lightning stops with an error naming it if validation does not log it).
            config |= {"monitor": "val/loss", "strict": True}
        return {"optimizer": optimizer, "lr_scheduler": config}


#: The constructor arguments that say how the model is computed, not what it is (never stored, may change).
HOW_KEYS = ("compile", "channels_last")
#: The hyper-parameters a checkpoint stores: every other argument of ``NAGModule.__init__`` (read from it, so the
#: list cannot drift from the constructor).
HPARAM_KEYS = tuple(n for n in inspect.signature(NAGModule.__init__).parameters if n not in ("self", *HOW_KEYS))

"""The LightningModule: orchestrates encoder, decoder, prior and matching distance; holds no maths itself.

Collaborators arrive as Hydra configs (``_target_`` mappings) and are instantiated here. That keeps every
checkpoint self-contained: ``NAGModule.load_from_checkpoint(path)`` rebuilds the same nets, the same prior
(its parameters are buffers in the state dict too) and the same matching distance, with no config at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from nag.config.errors import DivergenceError, UserInputError
from nag.model.matching import PriorMatching
from nag.model.priors import Prior
from nag.runs.checkpoint_file import CheckpointError, read_checkpoint
from nag.runs.trusted import CHECKPOINT_ROLES, UntrustedConfigError, check_config

#: The loss terms of every step, in the order ``loss_terms`` returns them.
TERMS = ("recon", "matching", "loss")

#: The hyper-parameters a checkpoint may carry: the arguments of ``NAGModule.__init__`` that define the run (all
#: of them, so resuming may change none; ``compile`` and ``channels_last`` only say how it is computed).
HPARAM_KEYS = ("latent_dim", "encoder", "decoder", "prior", "matching", "optimizer", "scheduler")


def _plain(cfg: Mapping[str, Any] | DictConfig | None) -> dict[str, Any] | None:
    """Resolved plain-dict copy of a config: what the checkpoint stores (safe to load with weights_only)."""
    if cfg is None:
        return None
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def gather_codes(z: Tensor) -> Tensor:
    """The codes of every process of a distributed run, ``(W·B, d)``, in rank order; ``z`` itself otherwise.

    Differentiable: ``torch.distributed.nn``'s all-gather sends back to each process the *sum* over processes of
    the gradients for its share. Every process computes the same distance of the global batch, so that sum is
    W times the distance's gradient, and DDP's averaging of the parameter gradients over the W processes gives
    exactly the gradient of a single process holding the whole batch.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=0)


def check_hparams(hparams: Mapping[str, Any], source: str | Path) -> None:
    """A checkpoint's hyper-parameters before anything is built from them: exactly nag's keys, ``latent_dim`` a
    positive integer, each part a class of its kind on the allow-list (:mod:`nag.runs.trusted`)."""
    unknown = sorted(map(str, set(hparams) - set(HPARAM_KEYS)))
    if unknown:
        raise UntrustedConfigError(
            f"checkpoint {source} stores unexpected hyper-parameters {unknown}; nag checkpoints hold "
            f"only {list(HPARAM_KEYS)}. Refused."
        )
    missing = [k for k in HPARAM_KEYS if k not in hparams and k != "scheduler"]
    if missing:
        raise CheckpointError(f"checkpoint {source} lacks the hyper-parameter(s) {missing}; nag checkpoints hold "
                              f"{list(HPARAM_KEYS)}. The file is damaged or not nag's.")  # fmt: skip
    dim = hparams["latent_dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise CheckpointError(f"checkpoint {source}: latent_dim={dim!r} must be a positive integer.")
    check_config(dict(hparams), f"checkpoint {source} hyper_parameters", roles=CHECKPOINT_ROLES)


class NAGModule(L.LightningModule):
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

    ``compile`` and ``channels_last`` are how the run is computed, not what it computes: they are not stored in
    checkpoints, and a checkpoint loads the same whatever they are.
    """

    def __init__(
        self,
        latent_dim: int,
        encoder: Mapping[str, Any],
        decoder: Mapping[str, Any],
        prior: Mapping[str, Any],
        matching: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        compile: bool = False,
        channels_last: bool | str = "auto",
    ) -> None:
        super().__init__()
        if channels_last not in (True, False, "auto"):
            raise ValueError(f"model.channels_last must be true, false or auto, got {channels_last!r}.")
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
                raise ValueError(f"{key} latent dimension {dim} differs from model.latent_dim={latent_dim}.")

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: Any = None, strict: bool = True, **kwargs: Any
    ) -> NAGModule:
        """Rebuild a trained model from a checkpoint written by ``nag.train``, safely.

        Unlike Lightning's generic loader, this reads the file with torch's ``weights_only`` unpickler, accepts
        only ``NAGModule``'s own hyper-parameters (Lightning's ``_instantiator`` hook, for one, names code to
        call), builds nothing outside :mod:`nag.runs.trusted`'s allow-list (each part of its own kind), and
        reports a malformed checkpoint or one of another architecture in one message instead of a traceback.

        Args:
            checkpoint_path: The ``.ckpt`` file.
            map_location: Device of the returned model (default: CPU).
            strict: Require the state dict to match exactly.
            **kwargs: Hyper-parameters to replace (e.g. ``prior={...}``: the model then samples from that prior,
                not the stored one), checked like the stored ones, and
                ``compile`` / ``channels_last`` (how to compute, not stored).
        """
        ckpt = read_checkpoint(checkpoint_path, map_location="cpu", key=kwargs.pop("_key", "checkpoint"))
        how = {k: kwargs.pop(k) for k in ("compile", "channels_last") if k in kwargs}  # not hyper-parameters
        hparams = {**ckpt["hyper_parameters"], **kwargs}
        check_hparams(hparams, checkpoint_path)
        try:
            model = cls(**hparams, **how)
        except UserInputError:
            raise
        except Exception as e:  # Hydra wraps a constructor's TypeError; a crafted file can fail in many ways
            raise CheckpointError(
                f"checkpoint {checkpoint_path}: its hyper-parameters do not build a model ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:200]}); the file is damaged or crafted."
            ) from None
        # A replaced prior or matching distance keeps the state built from its new config (the stored one
        # describes the old: a prior's mean and variance are buffers).
        own = {f"{part}.{k}": v for part in ("prior", "matching") if part in kwargs
               for k, v in getattr(model, part).state_dict().items()}  # fmt: skip
        model.load_weights({**ckpt["state_dict"], **own}, str(checkpoint_path), strict=strict)
        return model.to(map_location if map_location is not None else "cpu")

    def load_weights(self, state_dict: Mapping[str, Tensor], source: str, strict: bool = True) -> None:
        """``load_state_dict`` with one readable message when the weights belong to another architecture."""
        own = self.state_dict()
        mismatched = [k for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if mismatched or (strict and (missing or unexpected)):
            detail = "; ".join(
                f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for what, keys in (("different shapes", mismatched), ("missing", missing), ("unexpected", unexpected))
                if keys
            )
            raise CheckpointError(
                f"{source} holds weights of another architecture than the configured model ({detail}). "
                "Use the model/data settings it was trained with (its run's .hydra/config.yaml)."
            )
        # Checked above: whatever strict says, the keys left missing keep the model's own values.
        self.load_state_dict(state_dict, strict=False)

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
        """Named loss terms of a batch: ``recon`` (per-pixel MSE), ``matching`` and ``loss``; ``generator``
        fixes the prior samples (and projections) the matching term draws."""
        z = self.encode(x)  # (B, d)
        x_hat = self.decode(z)  # (B, 3, H, W)
        recon = F.mse_loss(x_hat.float(), x.float())
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
            raise DivergenceError(self._divergence_message(terms, stage))
        if on_step:
            self._log_train(terms, x.shape[0])
            return terms["loss"]
        for name, value in terms.items():
            # Evaluation metrics are averaged over the processes (DDP) once per epoch.
            self.log(f"{stage}/{name}", value, on_epoch=True, prog_bar=name == "loss", batch_size=x.shape[0],
                     sync_dist=True)  # fmt: skip
        return terms["loss"]

    # Training terms are logged as train/<term>_step every trainer.log_every_n_steps steps (when Lightning writes
    # to the loggers anyway) and as train/<term>_epoch (and train/<term>, for callbacks and metrics.json) at
    # every epoch's end, averaged over the epoch's images on this process. The epoch sums are kept here, on the
    # device, instead of through a self.log call per term and step: that costs about 0.5 ms a call on a CPU (3 %
    # of a quickstart step, python -m nag.bench) and host work per step on a GPU.

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

    def _divergence_message(self, terms: dict[str, Tensor], stage: str) -> str:
        values = {k: float(v.detach()) for k, v in terms.items()}
        bad = [k for k in ("recon", "matching") if not torch.isfinite(terms[k])]
        what = (
            f"the {' and the '.join(bad)} term{'s are' if len(bad) > 1 else ' is'} non-finite"
            if bad
            else f"matching.weight × matching overflows (weight {self.matching.weight:g})"
        )
        where = {"train": "training", "val": "validation", "test": "testing"}[stage]
        return (
            f"training diverged: in {where} at step {self.global_step} (epoch {self.current_epoch}) {what} "
            f"(recon={values['recon']:.4g}, matching={values['matching']:.4g}). Lower model.optimizer.lr or "
            "matching.weight, or check the prior's mean and variance."
        )

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
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

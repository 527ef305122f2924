"""The two-stage VAE sampler (``sampler=two_stage``, Dai & Wipf 2019, "Diagnosing and enhancing VAE models"): a
second, small VAE fitted to the training codes, sampled by decoding u ~ N(0, I) into a code.

Why it can put mass on small modes where a Gaussian mixture of fixed size does not: its decoder variance γ is learned
(one scalar), and as γ → 0 the second VAE's aggregate posterior matches the codes' own distribution, small modes
included (the paper's Theorem 2). Network and loss follow the authors' code (``daib13/TwoStageVAE``,
``network/two_stage_vae_model.py``: ``build_encoder2``, ``build_decoder2``, ``kl_loss2``, ``gen_loss2``, and
``generate`` for sampling with γ's noise): ``depth`` dense ReLU layers of ``width`` units, the input concatenated to
the last hidden layer, a latent u as wide as the codes, log γ a scalar initialised at 0. Where we differ
(``nag.samplers.fitted``): the codes are standardised first, training stops early on the held-out negative ELBO
instead of running the paper's 800 epochs, the best epoch's weights are kept, and the fit is stored beside the run.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from annotated_types import Gt, Lt
from torch import Tensor, nn

from nag.config.params import Count, Positive, checked
from nag.samplers.fitted import FittedSampler

HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class _Dense(nn.Module):
    """``depth`` dense ReLU layers whose output is concatenated with the input (the reference's skip)."""

    def __init__(self, dim: int, width: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(dim if i == 0 else width, width), nn.ReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], -1)


class SecondStageVAE(nn.Module):
    """The second stage: codes z (standardised) ↔ latents u of the same width, decoder variance γ² learned."""

    def __init__(self, dim: int, width: int, depth: int) -> None:
        super().__init__()
        self.encoder, self.decoder = _Dense(dim, width, depth), _Dense(dim, width, depth)
        self.mu, self.log_sd = nn.Linear(dim + width, dim), nn.Linear(dim + width, dim)
        self.out = nn.Linear(dim + width, dim)
        self.log_gamma = nn.Parameter(torch.zeros(()))

    def decode(self, u: Tensor) -> Tensor:
        return self.out(self.decoder(u))

    def negative_elbo(self, z: Tensor) -> Tensor:
        """Per code, in nats: KL(q(u|z) ‖ N(0, I)) + the Gaussian reconstruction NLL with std γ (``loss2``)."""
        h = self.encoder(z)
        mu, log_sd = self.mu(h), self.log_sd(h)
        u = mu + log_sd.exp() * torch.randn_like(mu)
        kl = 0.5 * (mu.square() + (2 * log_sd).exp() - 2 * log_sd - 1).sum(1)
        gen = (((z - self.decode(u)) / self.log_gamma.exp()).square() / 2 + self.log_gamma + HALF_LOG_TWO_PI).sum(1)
        return kl + gen

    def sample(self, n: int) -> Tensor:
        """z ~ N(decoder(u), γ² I) with u ~ N(0, I) (the reference's ``generate(stage=2)``)."""
        u = torch.randn(n, self.mu.out_features)
        return self.decode(u) + self.log_gamma.exp() * torch.randn(n, self.mu.out_features)


class TwoStageVAESampler(FittedSampler):
    """A second-stage VAE fitted to the training codes (module docstring).

    Args:
        width: Units of each dense layer (the reference: 1024).
        depth: Dense layers of the encoder and of the decoder (the reference: 3).
        max_epochs: Upper bound on training epochs.
        patience: Stop after this many epochs without a better held-out negative ELBO.
        lr: Adam's learning rate.
        batch_size: Codes per step.
        val_fraction: Share of the codes held out for early stopping.
        seed: Seed of the split, the initialisation, the batches and of sampling.
        store: Folder of fitted samplers (``null``: the entry points use ``<run>/samplers`` of the checkpoint's run).
    """

    prefix, label, criterion = "two_stage", "two-stage VAE", "negative ELBO"
    name = "two_stage"
    net_settings = ("width", "depth")

    @checked
    def __init__(
        self,
        width: Count = 1024,
        depth: Count = 3,
        max_epochs: Count = 400,
        patience: Count = 20,
        lr: Positive = 1e-4,
        batch_size: Count = 64,
        val_fraction: Annotated[float, Gt(0), Lt(1)] = 0.2,
        seed: int = 0,
        store: str | None = None,
    ) -> None:
        self.width, self.depth = width, depth
        self.max_epochs, self.patience, self.lr, self.batch_size = max_epochs, patience, lr, batch_size
        self.val_fraction, self.seed, self.store = val_fraction, seed, store
        self.history: dict[str, Any] = {}

    def _build(self, dim: int) -> nn.Module:
        return SecondStageVAE(dim, self.width, self.depth)

    def _loss(self, net: nn.Module, z: Tensor) -> Tensor:
        return net.negative_elbo(z)

    def _draw(self, n: int) -> Tensor:
        return self.net.sample(n)

    @property
    def gamma(self) -> float:
        """The fitted decoder's standard deviation on the standardised codes (→ 0 as the fit sharpens)."""
        return float(self.net.log_gamma.detach().exp())

"""How well a set of codes matches a prior: the one measure the training diagnostics and the evaluation share.

The TensorBoard callback (``latent/*`` every validation epoch) and ``nag.evaluate`` (``latent.*``) report the same
numbers from this function, so a run's curves and its final evaluation can be compared directly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nag.model.matching import (
    WAE_SCALES,
    base_scale,
    batch_moments,
    mmd_unbiased,
    random_directions,
    sliced_wasserstein,
)
from nag.model.priors import Prior


def latent_fit(z: Tensor, prior: Prior, seed: int = 0, n_projections: int = 128) -> dict[str, float]:
    """How well codes ``(N, d)`` match ``prior``: MMD² (unbiased, multi-scale IMQ), sliced W2, and the mean
    absolute errors of the per-dimension mean, variance and kurtosis; plus the codes' own statistics."""
    z = z.float()
    g = torch.Generator().manual_seed(seed)
    y = prior.sample(len(z), generator=g).to(z)
    theta = random_directions(z.shape[1], n_projections, g, z.device)
    mean, var, kurt = batch_moments(z)
    return {
        "mmd": mmd_unbiased(z, y, "imq", base_scale(prior), WAE_SCALES).item(),
        "swd": sliced_wasserstein(z, y, theta, p=2).sqrt().item(),
        "mean_error": (mean - prior.mean.to(z)).abs().mean().item(),
        "variance_error": (var - prior.variance.to(z)).abs().mean().item(),
        "kurtosis_error": (kurt - prior.kurtosis.to(z)).abs().mean().item(),
        "code_mean": mean.mean().item(),
        "code_variance": var.mean().item(),
        "code_kurtosis": kurt.mean().item(),
        "code_norm": z.norm(dim=1).mean().item(),
    }

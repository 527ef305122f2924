"""Evaluation metrics that need no network (FID, KID, precision/recall: :mod:`nag.metrics.fidelity`).

Directions: reconstruction MSE ↓, PSNR ↑, SSIM ↑; latent MMD ↓, SWD ↓, moment errors ↓; multi-scale SWD ↓
(compare with the real-vs-real baseline); diversity: closer to the real images' value is better (0 = all
samples identical).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from nag.model.latent_fit import latent_fit  # noqa: F401  (re-exported: one of the evaluation's metrics)
from nag.model.matching import random_directions, sliced_wasserstein

log = logging.getLogger(__name__)


# --- reconstruction ---------------------------------------------------------------------------------------


SSIM_BORDER = 5  # half of torchmetrics' default 11-px Gaussian window


def reconstruction_metrics(x: Tensor, x_hat: Tensor) -> dict[str, float]:
    """MSE, PSNR (dB, of the pooled squared error) and mean SSIM of images ``(N, 3, H, W)`` in [0, 1].

    SSIM follows the usual convention (Wang et al. 2004): the mean of the SSIM map over the positions where the
    11-px window lies inside the image. torchmetrics' own mean also averages the reflect-padded border, which
    lowers the value (0.509 instead of 0.565 on one pair); its map, cropped by the window's half-width, is the
    usual one exactly.
    """
    _, ssim_map = structural_similarity_index_measure(x_hat, x, data_range=1.0, return_full_image=True)
    b = SSIM_BORDER
    return {
        "mse": F.mse_loss(x_hat, x).item(),
        "psnr": peak_signal_noise_ratio(x_hat, x, data_range=1.0).item(),
        "ssim": ssim_map[..., b:-b, b:-b].mean().item(),
    }


def error_by_attribute(per_image_mse: Tensor, attributes: Tensor, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean reconstruction error of the images with and without each attribute.

    ``ratio`` = present / absent: above 1 means the autoencoder reconstructs faces with the attribute worse
    (the report's "rare features such as sunglasses and beards are lost"). Attributes present in all or
    none of the images are left out.
    """
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        present = attributes[:, k] > 0.5  # (N,)
        n = int(present.sum())
        if 0 < n < len(present):
            p, a = per_image_mse[present].mean().item(), per_image_mse[~present].mean().item()
            out[name] = {"present": p, "absent": a, "ratio": p / a, "n_present": n, "frequency": n / len(present)}
    return out


# --- sample quality: multi-scale sliced Wasserstein on a Laplacian pyramid (Karras et al. 2018) -------------

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: Tensor) -> Tensor:
    """Separable 5-tap binomial blur with reflect padding, ``(N, C, H, W)``."""
    c = x.shape[1]
    k = _BINOMIAL.to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def laplacian_pyramid(x: Tensor, min_size: int = 16) -> list[Tensor]:
    """Band-pass levels from the finest down to the ``min_size`` low-pass residual (as in Progressive GAN)."""
    levels = []
    while x.shape[-1] > min_size:
        down = _blur(x)[..., ::2, ::2]
        up = torch.zeros_like(x)
        up[..., ::2, ::2] = down
        levels.append(x - 4 * _blur(up))
        x = down
    levels.append(x)
    return levels


def _descriptors(level: Tensor, ys: Tensor, xs: Tensor, size: int) -> Tensor:
    """``size × size`` patches at ``(ys, xs)`` (each ``(N, P)``), normalised per channel over the set,
    ``(N·P, 3·size²)``."""
    n, c = level.shape[:2]
    patches = level.unfold(2, size, 1).unfold(3, size, 1)  # (N, C, h', w', size, size)
    d = patches[torch.arange(n)[:, None], :, ys, xs]  # (N, P, C, size, size)
    d = d.reshape(-1, c, size, size)
    d = (d - d.mean(dim=(0, 2, 3), keepdim=True)) / (d.std(dim=(0, 2, 3), keepdim=True) + 1e-8)
    return d.flatten(1)


def multiscale_swd(
    a: Tensor,
    b: Tensor,
    patches_per_image: int = 64,
    patch_size: int = 7,
    n_directions: int = 128,
    repeats: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Sliced Wasserstein distance between two image sets on each Laplacian-pyramid level (Progressive GAN's
    recipe: 7×7 patches, per-level normalisation, random projections, SW_1), ×10³ as that paper reports it.
    Progressive GAN takes 128 patches from each of 16k images; on a CPU we default to 64 from each of ~1k
    (≈64k descriptors per level and set, still far more than a 1-D Wasserstein estimate needs).

    Returns ``{"swd_<resolution>": ..., "swd_mean": ...}``; both sets are cut to the smaller size.
    """
    n = min(len(a), len(b))
    g = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for la, lb in zip(laplacian_pyramid(a[:n].float().cpu()), laplacian_pyramid(b[:n].float().cpu()), strict=True):
        h, w = la.shape[-2:]
        size = min(patch_size, h, w)
        # The same random patch positions in both sets: independent of the content, and identical sets then
        # give exactly 0 (Progressive GAN draws them independently, which only adds noise).
        ys = torch.randint(h - size + 1, (n, patches_per_image), generator=g)
        xs = torch.randint(w - size + 1, (n, patches_per_image), generator=g)
        da, db = _descriptors(la, ys, xs, size), _descriptors(lb, ys, xs, size)
        dists = [
            sliced_wasserstein(da, db, random_directions(da.shape[1], n_directions, g, da.device), p=1).item()
            for _ in range(repeats)
        ]
        out[f"swd_{w}"] = 1e3 * sum(dists) / repeats
    out["swd_mean"] = sum(out.values()) / len(out)
    return out


def diversity(images: Tensor) -> float:
    """Mean pairwise RMS pixel distance between different images of a set (exactly 0 when all are identical)."""
    x = images.flatten(1).float()  # (N, D)
    if len(x) < 2:
        raise ValueError(f"diversity needs at least 2 images, got {len(x)}.")
    # pdist takes the differences directly (no ||a||² + ||b||² − 2ab cancellation), each pair once.
    return (torch.pdist(x) / x.shape[1] ** 0.5).mean().item()


def interpolation_smoothness(rows: Tensor) -> dict[str, float]:
    """How evenly decoded interpolation paths ``(P, S, 3, H, W)`` change from step to step.

    For each path, the RMS pixel change of every step; ``step_ratio`` = largest step / mean step (1 = perfectly
    even; a jump between two different faces halfway would give ≈ S − 1), averaged over paths and the worst.
    """
    steps = (rows[:, 1:] - rows[:, :-1]).flatten(2).pow(2).mean(2).sqrt()  # (P, S-1)
    ratio = steps.max(1).values / steps.mean(1).clamp_min(1e-12)  # (P,)
    return {"step_ratio": ratio.mean().item(), "worst_step_ratio": ratio.max().item(), "mean_step": steps.mean().item()}

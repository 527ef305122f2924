"""The reconstruction term of the loss: the per-pixel MSE, or the rare-pixel-weighted MSE of the README's
moonshot (``model.recon_emphasis``)."""

from __future__ import annotations

import torch
from torch import Tensor


def weighted_mse(x_hat: Tensor, x: Tensor, alpha: float) -> Tensor:
    """The squared error with the pixels that differ from the batch's mean face weighted up (``model.
    recon_emphasis``, the README's moonshot): w = 1 + α · d / mean(d), where d is a pixel's squared distance (over
    the channels) from the batch's mean image at that position; the loss is Σ w·(x̂ − x)² / Σ w, so α = 0 is
    the plain MSE and the scale stays that of an MSE. Sunglasses, hats and beards are exactly the pixels far from
    the mean face, and a plain MSE spends almost nothing on them (few faces, few pixels). The weights are the
    data's, not the model's: no gradient flows through them. Written here because no library weights a
    reconstruction by rarity; the idea is that of a focal loss (Lin et al. 2017) with the rarity of a pixel value
    in place of the difficulty of an example.
    """
    with torch.no_grad():
        d = (x - x.mean(0, keepdim=True)).pow(2).sum(1, keepdim=True)  # (B, 1, H, W)
        w = 1 + alpha * d / d.mean().clamp_min(1e-12)
    return (w * (x_hat - x).pow(2)).sum() / (w.sum() * x.shape[1])

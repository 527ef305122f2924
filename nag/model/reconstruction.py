"""The reconstruction term of the loss: the per-pixel MSE, or the rare-pixel-weighted MSE of the README's
moonshot (``model.recon_emphasis``), plus optional structure- and frequency-aware terms (``model.recon_ssim``,
``model.recon_frequency``) that make the reconstruction pay for small structures such as a mouth."""

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


def ssim_term(x_hat: Tensor, x: Tensor) -> Tensor:
    """1 − SSIM (torchmetrics, Gaussian 11 × 11 window, data range 1): 0 for a perfect reconstruction. SSIM compares
    local means, contrasts and structure, so a mouth's few pixels weigh by their local contrast, not by their
    share of the image as in the MSE."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1 - structural_similarity_index_measure(x_hat, x, data_range=1.0)


def frequency_term(x_hat: Tensor, x: Tensor) -> Tensor:
    """The focal frequency loss (Jiang et al. 2021; the authors' package ``focal-frequency-loss``, its defaults):
    the squared distance between the images' 2-D spectra, each frequency weighted by how badly it is
    reconstructed, so the high frequencies an MSE-trained decoder blurs away are paid for."""
    from focal_frequency_loss import FocalFrequencyLoss

    return FocalFrequencyLoss()(x_hat, x)

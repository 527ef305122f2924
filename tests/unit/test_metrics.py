"""Evaluation metrics and ex-post samplers: known answers and invariants."""

from __future__ import annotations

import math

import pytest
import torch

from nag.metrics.quality import (
    _blur,
    diversity,
    error_by_attribute,
    interpolation_smoothness,
    laplacian_pyramid,
    latent_fit,
    multiscale_swd,
    reconstruction_metrics,
)
from nag.model.priors import NormalPrior
from nag.samplers.core import GaussianMixtureSampler, PriorSampler
from tests.helpers import faces


def test_reconstruction_metrics_known_answers() -> None:
    x = torch.rand(4, 3, 32, 32) * 0.8
    same = reconstruction_metrics(x, x)
    assert same["mse"] == 0 and same["ssim"] == pytest.approx(1.0) and math.isinf(same["psnr"])
    off = reconstruction_metrics(x, x + 0.1)  # MSE 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB
    assert off["mse"] == pytest.approx(0.01, rel=1e-4) and off["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert off["ssim"] < 1


def test_error_by_attribute_known_answer() -> None:
    err = torch.tensor([1.0, 1.0, 3.0, 3.0])
    attrs = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    out = error_by_attribute(err, attrs, ["Sunglasses", "Everyone"])
    assert out == {"Sunglasses": {"present": 3.0, "absent": 1.0, "ratio": 3.0, "n_present": 2, "frequency": 0.5}}


def test_laplacian_pyramid_is_exactly_invertible() -> None:
    x = torch.rand(2, 3, 64, 64)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        up = torch.zeros_like(band)
        up[..., ::2, ::2] = rec
        rec = band + 4 * _blur(up)
    torch.testing.assert_close(rec, x)


def test_multiscale_swd_is_near_zero_for_identical_sets_and_grows_with_a_shift() -> None:
    a = faces(200)
    same = multiscale_swd(a, a.clone())
    other_real = multiscale_swd(faces(200, seed=1), a)
    noisy = multiscale_swd((a + 0.1 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))), a)
    darker = multiscale_swd(a * 0.6, a)
    blurred = multiscale_swd(_blur(_blur(a)), a)
    assert set(same) == {"swd_32", "swd_16", "swd_mean"}
    assert same["swd_mean"] == 0.0, "same images, same patches, same directions"
    assert noisy["swd_mean"] > 3 * other_real["swd_mean"]
    # Each level's patches are normalised per set (as in Progressive GAN): a global contrast change is invisible.
    assert darker["swd_mean"] < 0.1 * other_real["swd_mean"]
    assert blurred["swd_32"] > 3 * other_real["swd_32"], "blur removes the fine band"
    assert multiscale_swd(a, a, seed=3) == multiscale_swd(a, a, seed=3)


def test_diversity_known_answers() -> None:
    one = torch.rand(1, 3, 8, 8)
    assert diversity(one.expand(10, -1, -1, -1)) == 0.0
    assert diversity(torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])) == pytest.approx(1.0)
    assert diversity(faces(50)) > 0.1
    with pytest.raises(ValueError, match="at least 2 images"):
        diversity(one)


def test_latent_fit_is_near_zero_for_prior_codes_and_grows_with_a_shift() -> None:
    prior = NormalPrior(8, mean=-3.0, variance=2.0)
    z = prior.sample(2000, generator=torch.Generator().manual_seed(5))
    good, bad = latent_fit(z, prior), latent_fit(z + 1.0, prior)
    assert abs(good["mmd"]) < 0.01 and good["mean_error"] < 0.1 and good["kurtosis_error"] < 0.3
    assert bad["mmd"] > 20 * abs(good["mmd"]) and bad["swd"] > 3 * good["swd"]
    assert bad["mean_error"] == pytest.approx(1.0, abs=0.1) and good["code_mean"] == pytest.approx(-3, abs=0.1)


def test_interpolation_smoothness_known_answers() -> None:
    t = torch.linspace(0, 1, 11).view(1, 11, 1, 1, 1)
    ramp = t.expand(2, 11, 3, 4, 4)  # even steps
    jump = (t > 0.5).float().expand(2, 11, 3, 4, 4)  # all change in one step
    assert interpolation_smoothness(ramp)["step_ratio"] == pytest.approx(1.0)
    assert interpolation_smoothness(jump)["step_ratio"] == pytest.approx(10.0)


def test_gmm_sampler_finds_both_modes_and_is_reproducible() -> None:
    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(300, 2, generator=g) * 0.1 + 5, torch.randn(300, 2, generator=g) * 0.1 - 5])
    prior = NormalPrior(2)
    s = GaussianMixtureSampler(n_components=2).fit(codes, prior)
    z = s.sample(1000, seed=1)
    assert torch.equal(z, s.sample(1000, seed=1)) and not torch.equal(z, s.sample(1000, seed=2))
    assert 0.4 < (z[:, 0] > 0).float().mean() < 0.6 and (z.abs() - 5).abs().max() < 1.0
    assert (z[:100, 0] > 0).any() and (z[:100, 0] < 0).any(), "samples are shuffled across components"
    single = GaussianMixtureSampler(n_components=1).fit(codes, prior)
    assert single.name == "gaussian" and single.sample(4000).std(0).mean() == pytest.approx(5.0, rel=0.05)
    assert PriorSampler().fit(codes, prior).sample(3).shape == (3, 2)
    with pytest.raises(ValueError, match="sampler.n_components=400 needs at least 800"):
        GaussianMixtureSampler(n_components=400).fit(codes, prior)


def test_ssim_is_the_usual_interior_convention() -> None:
    """Against SSIM written out (Wang et al. 2004: 11-px Gaussian window, sigma 1.5, only where the window fits)."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    y = (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    k = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    k = k / k.sum()
    window = (k[:, None] * k[None, :]).expand(3, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=3)  # "valid": no padding

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    assert reconstruction_metrics(x, y)["ssim"] == pytest.approx(expected.mean().item(), abs=1e-5)

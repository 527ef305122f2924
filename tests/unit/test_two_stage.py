"""The two-stage VAE sampler (``sampler=two_stage``, ``nag.samplers.two_stage``): the reference's loss with known
answers, sampling with the decoder's noise in the codes' scale, a density no Gaussian fits, and the shared fit store
(``nag.samplers.fitted``) under its own name."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

from nag.config.errors import ConfigError
from nag.samplers.core import GaussianMixtureSampler, make_sampler
from nag.samplers.two_stage import SecondStageVAE, TwoStageVAESampler


def zeroed(dim: int = 3, log_gamma: float = 0.0) -> SecondStageVAE:
    """Every weight and bias 0: the encoder says u ~ N(0, I) for every code and the decoder's mean is 0."""
    net = SecondStageVAE(dim, width=8, depth=2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.log_gamma.fill_(log_gamma)
    return net


def test_the_negative_elbo_is_the_references_kl_plus_gaussian_nll_with_std_gamma() -> None:
    z = torch.tensor([[0.0, 1.0, -2.0], [3.0, 0.5, 0.0]])
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    # q(u|z) = N(0, I): KL 0; decoder mean 0, γ = 1: the standard normal's NLL.
    expected = (z.square() / 2 + half_log_2pi).sum(1)
    torch.testing.assert_close(zeroed().negative_elbo(z), expected)
    # γ = 2: ((z − 0)/2)²/2 + log 2 + ½ log 2π per dimension.
    expected = (z.square() / 8 + math.log(2) + half_log_2pi).sum(1)
    torch.testing.assert_close(zeroed(log_gamma=math.log(2)).negative_elbo(z), expected)
    # The KL of q = N(1, e^{2·(−1)}) per dimension: ½(1 + e^{−2} + 2 − 1), the decoder still 0 (its input unused).
    net = zeroed()
    with torch.no_grad():
        net.mu.bias.fill_(1.0)
        net.log_sd.bias.fill_(-1.0)
    kl = 3 * 0.5 * (1 + math.exp(-2) + 2 - 1)
    torch.testing.assert_close(net.negative_elbo(z), kl + (z.square() / 2 + half_log_2pi).sum(1))


def test_a_sample_is_the_decoded_mean_plus_gamma_times_noise() -> None:
    net = zeroed(dim=2, log_gamma=math.log(2))
    with torch.no_grad():
        net.out.bias.copy_(torch.tensor([5.0, -1.0]))
    torch.manual_seed(0)
    z = net.sample(20_000)
    torch.testing.assert_close(z.mean(0), torch.tensor([5.0, -1.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([2.0, 2.0]), atol=0.05, rtol=0)


def banana(n: int, seed: int) -> torch.Tensor:
    """A curved 2-D cloud (x2 = x1² + noise) away from the origin and far from unit scale: no Gaussian fits it."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, generator=g)
    x2 = x1**2 + 0.5 * torch.randn(n, generator=g)
    return torch.stack([x1, x2 - 3], 1) * 20 + 100


def small(**kw) -> TwoStageVAESampler:
    return TwoStageVAESampler(**{"width": 64, "depth": 2, "lr": 1e-3, "max_epochs": 300, **kw})


@pytest.fixture(scope="module")
def fitted() -> TwoStageVAESampler:
    return small().fit(banana(2000, 0), prior=None)


def test_it_learns_a_density_no_gaussian_fits_and_samples_in_the_codes_scale(fitted) -> None:
    gauss = GaussianMixtureSampler(1).fit(banana(2000, 0), prior=None)
    gauss_nll = -float(gauss.gmm.score(banana(2000, 1).double().numpy()))
    # The held-out negative ELBO is an upper bound on the NLL, in the codes' own nats (the standardisation's
    # Jacobian added): below one Gaussian's exact NLL (measured 8.1 vs 9.3 nats).
    assert fitted.history["val_nll"] < gauss_nll - 0.8, (fitted.history, gauss_nll)
    z = fitted.sample(4000, seed=0)
    x1, x2 = (z[:, 0] - 100) / 20, (z[:, 1] - 100) / 20 + 3
    assert torch.corrcoef(torch.stack([x1**2, x2]))[0, 1] > 0.7, "the samples have the cloud's curvature"
    assert z.mean(0).sub(banana(2000, 0).mean(0)).abs().max() < 4, z.mean(0)  # not the standardised 0
    assert fitted.gamma < 0.5, "the decoder's noise shrank from its initial 1"
    assert z.shape == (4000, 2) and z.dtype == torch.float32 and torch.isfinite(z).all()


def test_sampling_is_seeded_and_does_not_touch_the_global_rng(fitted) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = fitted.sample(50, seed=1), fitted.sample(50, seed=1), fitted.sample(50, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.rand(1), before), "the caller's random stream is untouched"


def test_the_kept_weights_are_the_best_epochs_on_the_same_held_out_noise(fitted) -> None:
    """The held-out negative ELBO is stochastic; each epoch is scored on the same draw (seeded), so the kept fit's
    score recomputed on the same split and draw is the history's best, and stopping waited `patience` epochs."""
    h = fitted.history
    assert h["epochs"] - h["best_epoch"] == fitted.patience or h["epochs"] == fitted.max_epochs
    codes = banana(2000, 0)
    torch.manual_seed(fitted.seed)
    order = torch.randperm(len(codes))
    held_out = (codes[order[: round(fitted.val_fraction * len(codes))]] - fitted.mean) / fitted.std
    score = fitted._held_out(held_out) + float(fitted.std.log().sum())
    assert score == pytest.approx(h["val_nll"], abs=1e-4)


def test_the_fit_is_stored_under_its_own_name_reused_and_refitted(tmp_path: Path, caplog) -> None:
    codes = banana(300, 0)
    first = small(max_epochs=5, store=str(tmp_path)).fit(codes, prior=None)
    (stored,) = tmp_path.glob("two_stage-*.pt")
    again = small(max_epochs=5, store=str(tmp_path)).fit(codes, prior=None)
    assert (first.history["stored"], again.history["stored"]) == (False, True)
    assert torch.equal(again.sample(20, seed=3), first.sample(20, seed=3)), "the same network"
    small(max_epochs=6, store=str(tmp_path)).fit(codes, prior=None)
    assert len(list(tmp_path.glob("two_stage-*.pt"))) == 2, "other settings: another file"
    stored.write_bytes(b"not a zip")
    with caplog.at_level(logging.WARNING, logger="nag.samplers.two_stage"):
        refit = small(max_epochs=5, store=str(tmp_path)).fit(codes, prior=None)
    assert f"ignored {stored}" in caplog.text and "fitting the two-stage VAE again" in caplog.text
    assert refit.history["stored"] is False


def test_it_is_a_sampler_by_name_and_bad_settings_are_refused_by_name() -> None:
    sampler = make_sampler("two_stage", store="/somewhere")
    assert isinstance(sampler, TwoStageVAESampler) and sampler.name == "two_stage" and sampler.store == "/somewhere"
    assert (sampler.width, sampler.depth, sampler.lr, sampler.batch_size) == (1024, 3, 1e-4, 64), "the reference's"
    for kw, key in [({"width": 0}, "width"), ({"val_fraction": 1.0}, "val_fraction"), ({"lr": -1.0}, "lr")]:
        with pytest.raises(ConfigError, match=key):
            TwoStageVAESampler(**kw)
    with pytest.raises(ValueError, match="sampler=two_stage needs at least 10 training codes"):
        small().fit(torch.randn(5, 2), prior=None)


@pytest.mark.parametrize(
    ("edit", "reused"),
    [
        (lambda d: d.update(std=torch.zeros_like(d["std"])), False),  # a zero std would divide by zero
        (lambda d: d.update(epochs=-1), False),
        (lambda d: d.update(best_epoch=-1), False),
        (lambda d: (d.pop("epochs"), d.pop("best_epoch")), True),  # an older record without its history: fine
    ],
)
def test_a_stored_fit_is_reused_only_when_every_number_in_it_makes_sense(tmp_path: Path, caplog, edit, reused) -> None:
    codes = banana(200, 0)
    small(max_epochs=3, store=str(tmp_path)).fit(codes, prior=None)
    (stored,) = tmp_path.glob("two_stage-*.pt")
    data = torch.load(stored, weights_only=True)
    edit(data)
    torch.save(data, stored)
    with caplog.at_level(logging.WARNING, logger="nag.samplers.two_stage"):
        again = small(max_epochs=3, store=str(tmp_path)).fit(codes, prior=None)
    assert again.history["stored"] is reused and (f"ignored {stored}" in caplog.text) is not reused
    if reused:
        assert (again.history["epochs"], again.history["best_epoch"]) == (0, 0)

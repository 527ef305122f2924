"""Invariants over ranges (hypothesis): prior moments and log-densities at any mean and variance, the matching
distances' sign and growth with a shift, unit projection directions, split assignment over index ranges, and every
``latent_fit`` field against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nag.data.celeba_layout import OFFICIAL_ENDS, _official_split
from nag.model.latent_fit import latent_fit
from nag.model.matching import MMD, WAE_SCALES, Moments, SlicedWasserstein, random_directions
from nag.model.priors import LaplacePrior, NormalPrior

# Reproducible in CI (the same examples every run), no per-example deadline (first calls warm torch up).
settings.register_profile("nag", derandomize=True, deadline=None, max_examples=40)
settings.load_profile("nag")

means = st.floats(-10, 10, allow_nan=False)
variances = st.floats(0.05, 20, allow_nan=False)
dims = st.integers(1, 6)


@given(dim=dims, mean=means, variance=variances, seed=st.integers(0, 2**16))
def test_normal_log_density_is_the_gaussian_formula(dim: int, mean: float, variance: float, seed: int) -> None:
    prior = NormalPrior(dim, mean=mean, variance=variance)
    z = torch.randn(5, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + mean
    expected = (-0.5 * (np.log(2 * np.pi * variance) + (z.numpy() - mean) ** 2 / variance)).sum(1)
    np.testing.assert_allclose(prior.log_prob(z).double().numpy(), expected, rtol=1e-4, atol=1e-3)


@given(dim=dims, mean=means, variance=variances, seed=st.integers(0, 2**16))
def test_laplace_log_density_is_the_laplace_formula(dim: int, mean: float, variance: float, seed: int) -> None:
    prior = LaplacePrior(dim, mean=mean, variance=variance)
    z = torch.randn(5, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + mean
    b = math.sqrt(variance / 2)  # variance of a Laplace of scale b is 2 b²
    expected = (-np.log(2 * b) - np.abs(z.numpy() - mean) / b).sum(1)
    np.testing.assert_allclose(prior.log_prob(z).double().numpy(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(("cls", "kurtosis"), [(NormalPrior, 3.0), (LaplacePrior, 6.0)])
@given(mean=means, variance=variances)
def test_prior_moments_are_the_parameters_and_the_samples_agree(
    cls, kurtosis: float, mean: float, variance: float
) -> None:
    prior = cls(4, mean=mean, variance=variance)
    assert torch.allclose(prior.mean, torch.full((4,), mean))
    assert torch.allclose(prior.variance, torch.full((4,), variance))
    assert torch.allclose(prior.kurtosis, torch.full((4,), kurtosis))
    z = prior.sample(40_000, generator=torch.Generator().manual_seed(0)).double()  # (N, 4)
    sd = math.sqrt(variance)
    assert (z.mean(0) - mean).abs().max() < 0.05 * sd
    assert ((z.var(0) / variance) - 1).abs().max() < 0.05
    k = ((z - z.mean(0)) ** 4).mean(0) / z.var(0) ** 2
    assert (k - kurtosis).abs().max() < 0.15 * kurtosis


@given(d=st.integers(1, 256), n=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_projection_directions_are_unit_vectors(d: int, n: int, seed: int) -> None:
    theta = random_directions(d, n, torch.Generator().manual_seed(seed), torch.device("cpu"))
    assert theta.shape == (d, n)
    assert torch.allclose(theta.norm(dim=0), torch.ones(n), atol=1e-5)


def test_projection_directions_are_uniform_not_axis_aligned() -> None:
    theta = random_directions(3, 20_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert theta.mean(1).abs().max() < 0.02  # no preferred direction
    assert torch.allclose((theta**2).mean(1), torch.full((3,), 1 / 3), atol=0.01)


DISTANCES = {
    "mmd_imq": lambda: MMD(kernel="imq", scales=WAE_SCALES),
    "mmd_rbf": lambda: MMD(kernel="rbf", scales=WAE_SCALES),
    "swd": lambda: SlicedWasserstein(n_projections=64),
    "moments": lambda: Moments(),
}


@pytest.mark.parametrize("name", list(DISTANCES))
@given(mean=st.floats(-5, 5), variance=st.floats(0.2, 5), s1=st.floats(0.75, 4), s2=st.floats(0.75, 4))
def test_distances_grow_with_a_shift_of_the_codes(
    name: str, mean: float, variance: float, s1: float, s2: float
) -> None:
    """Codes drawn from the prior itself, then moved off it by s·σ in every dimension: a larger shift, a larger
    distance (the same draws and projections for both)."""
    if abs(s1 - s2) < 0.25:
        return
    s1, s2 = sorted((s1, s2))
    prior, distance = NormalPrior(4, mean=mean, variance=variance), DISTANCES[name]()
    z = prior.sample(256, generator=torch.Generator().manual_seed(1))
    sd = math.sqrt(variance)

    def at(shift: float) -> float:
        return distance(z + shift * sd, prior, generator=torch.Generator().manual_seed(2)).item()

    assert 0 <= at(s1) < at(s2)


@pytest.mark.parametrize("name", list(DISTANCES))
def test_distances_are_near_zero_for_codes_drawn_from_the_prior(name: str) -> None:
    """0 in expectation (the MMD estimate is unbiased), far below the distance of a 1-σ shift."""
    prior, distance = NormalPrior(4, mean=-3, variance=2), DISTANCES[name]()
    same, shifted = [], []
    for seed in range(20):
        z = prior.sample(128, generator=torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(1000 + seed)
        same.append(distance(z, prior, generator=g).item())
        shifted.append(distance(z + 2**0.5, prior, generator=torch.Generator().manual_seed(1000 + seed)).item())
    assert abs(np.mean(same)) < 0.1 * np.mean(shifted)
    if name != "mmd_imq" and name != "mmd_rbf":
        assert min(same) >= 0  # SW and the moment penalty are non-negative for every batch


@given(number=st.integers(1, 400_000))
def test_official_split_of_any_index(number: int) -> None:
    expected = 0 if number <= 162_770 else 1 if number <= 182_637 else 2
    assert _official_split(f"{number:06d}.jpg") == expected


def test_official_ends_are_celebas() -> None:
    assert OFFICIAL_ENDS == (162_770, 182_637, 202_599)


def test_latent_fit_fields_by_hand() -> None:
    """Every field recomputed in numpy from the same codes, prior draws and directions."""
    prior = NormalPrior(3, mean=[-1.0, 0.0, 2.0], variance=[0.5, 1.0, 2.0])
    rng = np.random.default_rng(0)
    z = rng.standard_t(df=6, size=(300, 3)) * [0.6, 1.1, 1.5] + [-0.8, 0.2, 2.5]
    fit = latent_fit(torch.tensor(z, dtype=torch.float32), prior, seed=7, n_projections=32)

    g = torch.Generator().manual_seed(7)  # latent_fit's draws: the prior sample, then the directions
    y = prior.sample(300, generator=g).double().numpy()
    theta = random_directions(3, 32, g, torch.device("cpu")).double().numpy()

    mean, var = z.mean(0), z.var(0)  # population (biased) variance, as batch_moments
    kurt = ((z - mean) ** 4).mean(0) / var**2
    assert fit["code_mean"] == pytest.approx(mean.mean(), rel=1e-5)
    assert fit["code_variance"] == pytest.approx(var.mean(), rel=1e-4)
    assert fit["code_kurtosis"] == pytest.approx(kurt.mean(), rel=1e-4)
    assert fit["mean_error"] == pytest.approx(np.abs(mean - [-1, 0, 2]).mean(), rel=1e-4)
    assert fit["variance_error"] == pytest.approx(np.abs(var - [0.5, 1, 2]).mean(), rel=1e-4)
    assert fit["kurtosis_error"] == pytest.approx(np.abs(kurt - 3).mean(), rel=1e-4)
    assert fit["code_norm"] == pytest.approx(np.linalg.norm(z, axis=1).mean(), rel=1e-5)

    pz, py = np.sort(theta.T @ z.T, axis=1), np.sort(theta.T @ y.T, axis=1)
    assert fit["swd"] == pytest.approx(np.sqrt(((pz - py) ** 2).mean()), rel=1e-4)

    c0 = 2 * 3 * np.mean([0.5, 1.0, 2.0])  # WAE's base scale 2·d·σ̄²

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(c0 * s / (c0 * s + d2) for s in WAE_SCALES)

    n = len(z)
    kzz, kyy, kzy = k(z, z), k(y, y), k(z, y)
    mmd = (kzz.sum() - np.trace(kzz)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kzy.mean()
    assert fit["mmd"] == pytest.approx(mmd, rel=1e-3, abs=1e-5)


def test_gaussian_mixture_centres_bounds_density_and_draws() -> None:
    from nag.model.priors import GaussianMixturePrior

    prior = GaussianMixturePrior(3, n_components=6, radius=2.5, variance=0.5)
    r = 2.5
    expected = torch.tensor([[r, 0, 0], [-r, 0, 0], [0, r, 0], [0, -r, 0], [0, 0, r], [0, 0, -r]])
    assert torch.equal(prior.centres, expected)  # ±radius on dimension k // 2, + for even k
    default = GaussianMixturePrior(2)
    assert default.centres.shape == (4, 2) and default.centres.abs().max() == 3.0 and default.component_var == 1.0
    for bad in ({"n_components": 7}, {"n_components": 1}, {"variance": 0.0}):
        with pytest.raises(ValueError):
            GaussianMixturePrior(3, **bad)
    # log density: log (1/K) Σ_k N(z; c_k, s² I), written out
    z = torch.tensor([[0.3, -1.0, 2.0], [2.5, 0.0, 0.0], [-4.0, 1.0, 0.5]], dtype=torch.float64)
    d2 = ((z[:, None, :] - expected[None].double()) ** 2).sum(-1)  # (3, K)
    log_n = -0.5 * (3 * np.log(2 * np.pi * 0.5) + d2 / 0.5)
    hand = torch.logsumexp(log_n, dim=1) - np.log(6)
    assert torch.allclose(prior.log_prob(z).double(), hand, atol=1e-4)
    # draws: every component equally often, each spread by the component variance
    x = prior.sample(60_000, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(x, expected).argmin(1)
    counts = torch.bincount(nearest, minlength=6).double() / len(x)
    assert (counts - 1 / 6).abs().max() < 0.01
    assert torch.allclose(x.mean(0), prior.mean, atol=0.03)
    assert torch.allclose(x.var(0), prior.variance, rtol=0.03)

"""Cramér–Wold, Sinkhorn and energy distances against independent references: CWAE's official formulas
(``gmum/cwae-pytorch``, ``src/metrics/cw.py``, restated verbatim below), POT's exact optimal transport, the energy
distance written out pair by pair, and scipy's in one dimension; each near 0 on prior draws and growing with a
shift."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.stats
import torch

from nag.model.distances import (
    CramerWold,
    Energy,
    Sinkhorn,
    cramer_wold_normal,
    cramer_wold_samples,
    energy_distance,
    silverman,
)
from nag.model.priors import LaplacePrior, NormalPrior


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- CWAE's official code, as published (numpy-free parts), for the comparison ---------------------------------


def _official_pairwise(x, y=None):
    x_norm = (x**2).sum(1).view(-1, 1)
    if y is not None:
        y_t = torch.transpose(y, 0, 1)
        y_norm = (y**2).sum(1).view(1, -1)
    else:
        y_t = torch.transpose(x, 0, 1)
        y_norm = x_norm.view(1, -1)
    dist = x_norm + y_norm - 2.0 * torch.mm(x, y_t)
    return torch.clamp(dist, 0.0, np.inf)


def official_cw(X):
    N, D = X.size()
    y = (4 / (3 * N)) ** 0.4
    K = 1.0 / (2.0 * D - 3.0)
    A = (1 / (N**2)) * (1 / torch.sqrt(y + K * _official_pairwise(X))).sum()
    B = (2 / N) * (1 / torch.sqrt(y + 0.5 + K * (X**2).sum(1))).sum()
    return (1 / math.sqrt(1 + y)) + A - B


def official_cw_sampling(first_sample, second_sample):
    def phi_sampling(s, D):
        return (1.0 + 4.0 * s / (2.0 * D - 3)) ** (-0.5)

    N_int, D_int = first_sample.size()
    N, D = float(N_int), float(D_int)
    y = (4 / (3 * N_int)) ** 0.4
    T = 1.0 / (2.0 * N * N * math.sqrt(math.pi * y))
    A = phi_sampling(_official_pairwise(first_sample) / (4 * y), D).sum()
    B = phi_sampling(_official_pairwise(second_sample) / (4 * y), D).sum()
    C = phi_sampling(_official_pairwise(first_sample, second_sample) / (4 * y), D).sum()
    return T * (A + B - 2 * C)


def test_cramer_wold_is_the_official_formula_on_fixed_inputs() -> None:
    x, y = randn(64, 16) * 1.3 + 0.2, randn(64, 16, seed=1)
    assert cramer_wold_normal(x).item() == pytest.approx(official_cw(x).item(), rel=1e-12)
    assert cramer_wold_samples(x, y).item() == pytest.approx(official_cw_sampling(x, y).item(), rel=1e-12)
    assert silverman(64) == pytest.approx((4 / 192) ** 0.4)


def test_cramer_wold_standardises_codes_so_any_diagonal_normal_is_exact() -> None:
    """Codes of N(−3, 2) under prior N(−3, 2) get the distance of their standardised values to N(0, I)."""
    x = randn(128, 16, seed=2).float()
    prior = NormalPrior(16, mean=-3.0, variance=2.0)
    cw = CramerWold(log=False)
    assert cw(-3 + math.sqrt(2) * x, prior).item() == pytest.approx(cramer_wold_normal(x).item(), rel=1e-5)
    log_cw = CramerWold(log=True)(-3 + math.sqrt(2) * x, prior).item()
    assert log_cw == pytest.approx(math.log(cramer_wold_normal(x).item() + 1e-7), rel=1e-5)


@pytest.mark.parametrize("prior", [NormalPrior(16, mean=-3.0, variance=2.0), LaplacePrior(16)])
def test_cramer_wold_is_small_on_prior_draws_and_grows_with_a_shift(prior) -> None:
    g = torch.Generator().manual_seed(0)
    z = prior.sample(256, generator=g)
    cw = CramerWold(log=False)
    near = cw(z, prior, torch.Generator().manual_seed(1)).item()
    shifted = [cw(z + s, prior, torch.Generator().manual_seed(1)).item() for s in (0.5, 1.0, 2.0)]
    assert abs(near) < shifted[0] < shifted[1] < shifted[2]


def test_cramer_wold_takes_a_given_bandwidth_and_standardises_prior_draws_too() -> None:
    """γ given is used (not Silverman's); for a prior with no closed form both the codes and the prior's draws are
    standardised by its mean and std before the two-sample form."""
    x = randn(32, 8, seed=3)
    g, n, d = 0.5, 32, 8
    k = 1.0 / (2 * d - 3)
    pairs = sum(1 / math.sqrt(g + k * float((x[i] - x[j]).square().sum())) for i in range(n) for j in range(n))
    single = sum(1 / math.sqrt(g + 0.5 + k * float(x[i].square().sum())) for i in range(n))
    expected = 1 / math.sqrt(1 + g) + pairs / n**2 - 2 * single / n
    assert cramer_wold_normal(x, gamma=g).item() == pytest.approx(expected, rel=1e-9)
    assert cramer_wold_normal(x, gamma=g).item() != pytest.approx(cramer_wold_normal(x).item(), rel=1e-3)
    y = randn(32, 8, seed=4)
    assert cramer_wold_samples(x, y, gamma=g).item() != pytest.approx(cramer_wold_samples(x, y).item(), rel=1e-3)
    prior = LaplacePrior(16, mean=3.0, variance=2.0)
    z = prior.sample(64, generator=torch.Generator().manual_seed(5)) * 1.5
    draws = prior.sample(64, generator=torch.Generator().manual_seed(6))
    expected = cramer_wold_samples((z - 3) / math.sqrt(2), (draws - 3) / math.sqrt(2)).item()
    got = CramerWold(log=False)(z, prior, torch.Generator().manual_seed(6)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_cramer_wold_refuses_small_codes_by_name() -> None:
    with pytest.raises(ValueError, match="at least 8 dimensions .* got 4: raise model.latent_dim"):
        CramerWold()(torch.zeros(8, 4), NormalPrior(4))


def test_sinkhorn_tends_to_exact_optimal_transport_as_the_blur_shrinks() -> None:
    """Against POT's exact OT (ot.emd2) with geomloss's cost ‖x − y‖² / 2, on two small 2-D sets."""
    x, y = randn(40, 2, seed=3).float(), (randn(40, 2, seed=4) * 0.5 + 1.0).float()
    exact = ot.emd2(np.full(40, 1 / 40), np.full(40, 1 / 40), ot.dist(x.numpy(), y.numpy()) / 2)
    unit = NormalPrior(2)  # blur in units of its standard deviation 1
    s = Sinkhorn(blur=0.01, scaling=0.9).distance(x, y, unit, None).item()
    assert s == pytest.approx(exact, rel=0.02)


def test_sinkhorn_is_zero_for_one_set_and_grows_with_a_shift() -> None:
    prior = NormalPrior(8, variance=2.0)
    g = torch.Generator().manual_seed(0)
    z = prior.sample(128, generator=g)
    s = Sinkhorn()
    assert s.distance(z, z, prior, None).item() == pytest.approx(0.0, abs=1e-4)
    values = [s(z + shift, prior, torch.Generator().manual_seed(1)).item() for shift in (0.0, 0.5, 1.0, 2.0)]
    # two finite samples of one distribution are apart in 8-d (≈ 4.7 here); a shift of 2 adds 8 · 2² / 2 = 16
    assert values == sorted(values) and values[-1] - values[0] == pytest.approx(16, rel=0.15)


def test_energy_distance_is_its_formula_written_out() -> None:
    x, y = randn(7, 3, seed=5), randn(5, 3, seed=6) + 0.3
    xy = sum(torch.dist(a, b) for a in x for b in y) / 35
    xx = sum(torch.dist(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(torch.dist(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    assert energy_distance(x, y).item() == pytest.approx((2 * xy - xx - yy).item(), rel=1e-6)
    xxv = sum(torch.dist(x[i], x[j]) for i in range(7) for j in range(7)) / 49
    yyv = sum(torch.dist(y[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert energy_distance(x, y, unbiased=False).item() == pytest.approx((2 * xy - xxv - yyv).item(), rel=1e-6)


def test_energy_distance_is_scipys_in_one_dimension_and_scale_equivariant() -> None:
    x, y = randn(50, 1, seed=7), randn(30, 1, seed=8) * 2 + 1
    # scipy returns sqrt(2E|X−Y| − E|X−X'| − E|Y−Y'|) with every pair in the means (the V-statistic)
    expected = scipy.stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy()) ** 2
    assert energy_distance(x, y, unbiased=False).item() == pytest.approx(expected, rel=1e-6)
    assert energy_distance(3 * x, 3 * y).item() == pytest.approx(3 * energy_distance(x, y).item(), rel=1e-6)


def test_energy_is_near_zero_on_prior_draws_and_grows_with_a_shift() -> None:
    prior = NormalPrior(8, mean=-3.0, variance=2.0)
    z = prior.sample(256, generator=torch.Generator().manual_seed(0))
    e = Energy()
    values = [e(z + shift, prior, torch.Generator().manual_seed(1)).item() for shift in (0.0, 0.5, 1.0, 2.0)]
    assert abs(values[0]) < 0.2 * values[1] and values == sorted(values)


@pytest.mark.parametrize("distance", [CramerWold(), Sinkhorn(), Energy()])
def test_each_new_distance_gives_finite_gradients_to_the_codes(distance) -> None:
    prior = NormalPrior(8)
    z = prior.sample(32, generator=torch.Generator().manual_seed(0)).requires_grad_()
    distance(z, prior, torch.Generator().manual_seed(1)).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="blur=0"):
        Sinkhorn(blur=0)
    with pytest.raises(ValueError, match="scaling=1.0 must be < 1"):
        Sinkhorn(scaling=1.0)
    with pytest.raises(ValueError, match="weight=-1"):
        Energy(weight=-1)


def test_sinkhorns_blur_is_in_prior_standard_deviations() -> None:
    """Codes, draws and prior scaled by c: the divergence scales by c² exactly (the blur follows the prior)."""
    x, y = randn(30, 4, seed=9).float(), (randn(30, 4, seed=10) + 0.5).float()
    s = Sinkhorn(blur=0.3)
    one = s.distance(x, y, NormalPrior(4, variance=1.0), None).item()
    assert s.distance(3 * x, 3 * y, NormalPrior(4, variance=9.0), None).item() == pytest.approx(9 * one, rel=1e-3)


def test_minibatch_sinkhorn_prefers_shrunken_codes_in_32_dimensions() -> None:
    """Why the benchmark's sinkhorn codes keep variance ≈ 0.3 against N(0, 2): over 64-code minibatches in 32-D the
    expected divergence to fresh prior draws is lower for codes at 0.39× the prior's scale (variance 0.30) than for
    prior draws themselves — optimal transport between two small samples in many dimensions pays for their distance
    (sample complexity n^(-1/d)), and debiasing removes only the self-terms. The unbiased energy distance, the
    control, is lowest at the prior's own scale. In 2-D the bias is gone."""
    prior = NormalPrior(32, variance=2.0)
    s = Sinkhorn(blur=0.1)  # conf/matching/sinkhorn.yaml

    def mean_over_batches(f, scale: float, dim: int = 32, reps: int = 10) -> float:
        g = torch.Generator().manual_seed(0)
        return (
            sum(
                f(scale * 2**0.5 * torch.randn(64, dim, generator=g), 2**0.5 * torch.randn(64, dim, generator=g))
                for _ in range(reps)
            )
            / reps
        )

    def sinkhorn(x: torch.Tensor, y: torch.Tensor) -> float:
        return s.distance(x, y, prior, None).item()

    def energy(x: torch.Tensor, y: torch.Tensor) -> float:
        return energy_distance(x, y).item()

    assert mean_over_batches(sinkhorn, 0.39) < 0.75 * mean_over_batches(sinkhorn, 1.0)  # 27.5 vs 39.9
    assert mean_over_batches(sinkhorn, 0.39) < mean_over_batches(sinkhorn, 0.7)  # 27.5 vs 30.9: a minimum near 0.4
    assert mean_over_batches(energy, 1.0) < mean_over_batches(energy, 0.85) < mean_over_batches(energy, 0.39)
    flat = NormalPrior(2, variance=2.0)
    assert mean_over_batches(lambda x, y: s.distance(x, y, flat, None).item(), 0.39, dim=2) > mean_over_batches(
        lambda x, y: s.distance(x, y, flat, None).item(), 1.0, dim=2
    )


def test_sinkhorn_at_unit_scale_is_geomlosss_divergence_with_the_given_blur() -> None:
    """Under N(0, 1) the blur is geomloss's own (σ̄ = 1), and another blur gives another value."""
    from geomloss import SamplesLoss

    x, y = randn(60, 3, seed=9).float(), (randn(60, 3, seed=10) * 0.7 + 0.4).float()
    unit = Sinkhorn(blur=0.5, scaling=0.8).distance(x, y, NormalPrior(3), None).item()
    reference = SamplesLoss("sinkhorn", p=2, blur=0.5, scaling=0.8, debias=True)(x, y).item()
    assert unit == pytest.approx(reference, rel=1e-5)
    assert Sinkhorn(blur=0.05, scaling=0.8).distance(x, y, NormalPrior(3), None).item() != pytest.approx(unit, rel=0.05)

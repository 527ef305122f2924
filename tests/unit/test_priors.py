"""Priors: sampling statistics, log densities, reproducibility and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Laplace, Normal

from nag.model.priors import GaussianMixturePrior, LaplacePrior, NormalPrior

N = 200_000


def _moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = z.mean(0)
    v = z.var(0)
    k = ((z - m) ** 4).mean(0) / v**2
    return m, v, k


@pytest.mark.parametrize(
    "prior",
    [
        NormalPrior(4, mean=-3.0, variance=2.0),
        NormalPrior(3, mean=[1.0, -2.0, 5.0], variance=[0.5, 1.0, 4.0]),
        LaplacePrior(4, mean=1.0, variance=2.0),
        GaussianMixturePrior(4, n_components=4, radius=3.0, variance=0.5),
    ],
    ids=["normal", "normal-per-dim", "laplace", "gmm"],
)
def test_sample_moments_match_closed_forms(prior) -> None:
    z = prior.sample(N, generator=torch.Generator().manual_seed(0))
    assert z.shape == (N, prior.dim)
    m, v, k = _moments(z)
    torch.testing.assert_close(m, prior.mean, atol=0.03 * prior.variance.max().sqrt().item() + 0.01, rtol=0)
    torch.testing.assert_close(v, prior.variance, rtol=0.03, atol=0.01)
    torch.testing.assert_close(k, prior.kurtosis, rtol=0.06, atol=0.05)


def test_known_kurtoses() -> None:
    assert torch.all(NormalPrior(2).kurtosis == 3)
    assert torch.all(LaplacePrior(2).kurtosis == 6)
    # A symmetric two-mode mixture along dim 0 is platykurtic there (kurtosis < 3), Gaussian elsewhere.
    k = GaussianMixturePrior(3, n_components=2, radius=3.0, variance=1.0).kurtosis
    assert k[0] < 3 and torch.allclose(k[1:], torch.tensor(3.0))


def test_log_prob_agrees_with_torch_distributions() -> None:
    z = torch.randn(10, 3) * 2
    p = NormalPrior(3, mean=[0.0, 1.0, -3.0], variance=2.0)
    ref = Normal(torch.tensor([0.0, 1.0, -3.0]), torch.full((3,), 2.0).sqrt()).log_prob(z).sum(1)
    torch.testing.assert_close(p.log_prob(z), ref)
    lp = LaplacePrior(3, mean=0.5, variance=2.0)
    torch.testing.assert_close(lp.log_prob(z), Laplace(0.5, 1.0).log_prob(z).sum(1))
    g = GaussianMixturePrior(3, n_components=2, radius=2.0, variance=1.0)
    c0, c1 = torch.tensor([2.0, 0, 0]), torch.tensor([-2.0, 0, 0])
    dens = 0.5 * Normal(c0, 1.0).log_prob(z).sum(1).exp() + 0.5 * Normal(c1, 1.0).log_prob(z).sum(1).exp()
    torch.testing.assert_close(g.log_prob(z), dens.log())


@pytest.mark.parametrize("cls", [NormalPrior, LaplacePrior, GaussianMixturePrior])
def test_sampling_is_reproducible_given_a_generator(cls) -> None:
    p = cls(8)
    a = p.sample(16, generator=torch.Generator().manual_seed(3))
    b = p.sample(16, generator=torch.Generator().manual_seed(3))
    c = p.sample(16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_prior_is_saved_in_state_dict() -> None:
    p = NormalPrior(3, mean=-3.0, variance=2.0)
    q = NormalPrior(3)
    q.load_state_dict(p.state_dict())
    assert torch.equal(q.mean, p.mean) and torch.equal(q.variance, p.variance)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 3, "variance": 0.0}, "variance=0.0 must be > 0"),
        ({"dim": 3, "variance": -1.0}, "variance=-1.0 must be > 0"),
        ({"dim": 3, "mean": [1.0, 2.0]}, "mean=\\[1.0, 2.0\\] has 2 values but dim=3"),
        ({"dim": 0}, "dim=0 must be >= 1"),
        ({"dim": 2, "mean": float("nan")}, "mean=nan must be finite"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        NormalPrior(**kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: NormalPrior(3, mean=[1.0, 2.0]),
            "NormalPrior: mean=[1.0, 2.0] has 2 values but dim=3: give one value or 3.",
        ),
        (lambda: LaplacePrior(2, variance=[1.0, float("inf")]), "LaplacePrior: variance=[1.0, inf] must be finite."),
        (lambda: NormalPrior(2, variance=[1.0, 0.0]), "NormalPrior: variance=[1.0, 0.0] must be > 0."),
        (lambda: NormalPrior(0), "NormalPrior: dim=0 must be >= 1."),
        (lambda: GaussianMixturePrior(2, n_components=1), "GaussianMixturePrior: n_components=1 must be >= 2."),
        (
            lambda: GaussianMixturePrior(2, n_components=5),
            "GaussianMixturePrior: n_components=5 must be <= 2 * dim = 4.",
        ),
        (lambda: GaussianMixturePrior(2, variance=0.0), "GaussianMixturePrior: variance=0.0 must be > 0."),
    ],
)
def test_bad_parameters_get_the_whole_message(make, message: str) -> None:
    with pytest.raises(ValueError) as err:
        make()
    assert str(err.value) == message


def test_parameters_broadcast_and_negative_means_are_fine() -> None:
    p = NormalPrior(3, mean=-2.0, variance=[1.0, 2.0, 3.0])
    assert p.mean.tolist() == [-2.0, -2.0, -2.0] and p.variance.tolist() == [1.0, 2.0, 3.0]
    assert NormalPrior(1, mean=[5.0]).mean.tolist() == [5.0]
    g = GaussianMixturePrior(2, n_components=4, radius=2.0)  # the largest K for d = 2
    assert g.centres.tolist() == [[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]]


def test_descriptions() -> None:
    from nag.model.priors import describe

    assert describe(NormalPrior(4, mean=-3.0, variance=2.0)) == "NormalPrior(mean=-3, variance=2, dim=4)"
    assert describe(LaplacePrior(2, mean=[0.0, 3.0], variance=[1.0, 3.0])) == (
        "LaplacePrior(dim=2, |mean|=3, avg variance=2)"
    )
    assert describe(NormalPrior(2, mean=0.0, variance=[1.0, 5.0])).endswith("avg variance=3)")
    assert describe(NormalPrior(1, mean=2.0, variance=0.5)) == "NormalPrior(mean=2, variance=0.5, dim=1)"
    assert repr(NormalPrior(2, mean=1.5, variance=2.0)) == "NormalPrior(dim=2, mean≈1.5, variance≈2)"


def test_fixed_draws_and_translation() -> None:
    from nag.model.priors import fixed_draw, translated

    p = NormalPrior(3, mean=-3.0, variance=2.0)
    a = fixed_draw(p, 5)
    assert torch.equal(a, fixed_draw(p, 5)) and not torch.equal(a, fixed_draw(p, 5, seed=1))
    assert torch.equal(a, p.sample(5, generator=torch.Generator().manual_seed(0)))
    moved = translated(a, p, 100.0)
    assert torch.allclose(moved - a, torch.full_like(a, 103.0))


def test_laplace_noise_is_standardised_and_symmetric() -> None:
    eps = LaplacePrior(1)._standard_noise(200_000, torch.Generator().manual_seed(0))
    assert eps.mean().item() == pytest.approx(0.0, abs=0.01)
    assert eps.var().item() == pytest.approx(1.0, rel=0.02)
    assert (eps.abs() > 3).float().mean().item() == pytest.approx(np.exp(-3 * 2**0.5), rel=0.1)  # P(|ε| > t)
    assert torch.isfinite(eps).all()


def test_laplace_quantile_is_finite_at_the_ends_and_the_inverse_cdf_inside() -> None:
    from nag.model.priors import laplace_quantile

    r = torch.tensor([0.0, 1e-9, 0.25, 0.5, 0.75, 1 - 2**-24])  # torch.rand's smallest and largest values included
    q = laplace_quantile(r)
    assert torch.isfinite(q).all() and q[0] < -10 and q[-1] > 10
    assert q[0] == q[1]  # clamped: probabilities below 1e-7 give the same quantile
    assert q[-1].item() == pytest.approx(-q[0].item(), rel=1e-6)  # and the clamp is symmetric
    b = 2**-0.5  # the scale of a variance-1 Laplace
    ref = Laplace(0.0, b).icdf(r[2:5])
    assert torch.allclose(q[2:5], ref, atol=1e-6)
    assert q[3] == 0 and q[2] == -q[4] and q[2] < 0  # the median at 1/2, lower quantiles negative

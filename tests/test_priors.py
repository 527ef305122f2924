"""Priors: sampling statistics, log densities, reproducibility and bad parameters."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Laplace, Normal

from nag.priors import GaussianMixturePrior, LaplacePrior, NormalPrior

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
        ({"dim": 3, "variance": 0.0}, "prior.variance must be > 0"),
        ({"dim": 3, "variance": -1.0}, "prior.variance must be > 0"),
        ({"dim": 3, "mean": [1.0, 2.0]}, "prior.mean has 2 values but the latent dimension is 3"),
        ({"dim": 0}, "prior.dim must be a positive integer"),
        ({"dim": 2, "mean": float("nan")}, "prior.mean must be finite"),
    ],
)
def test_bad_parameters_name_the_config_key(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        NormalPrior(**kwargs)

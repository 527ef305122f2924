"""The family's newer prior-matching distances: Cramér–Wold (CWAE), debiased Sinkhorn and the energy distance.

Same interface as :mod:`nag.model.matching` (``matching(z, prior, generator)``, float32, autocast off; one class
here plus one yaml in ``conf/matching/``).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Gt
from torch import Tensor

from nag.config.params import NonNegative, checked
from nag.model.matching import PriorMatching, SampleMatching, squared_distances
from nag.model.priors import NormalPrior, Prior

CW_MIN_DIM = 8  # the closed form below is the official code's asymptotic one, used there for D >= 8


def silverman(n: int) -> float:
    """CWAE's smoothing γ = (4 / (3N))^0.4 (Silverman's rule of thumb for a unit-variance Normal)."""
    return (4.0 / (3.0 * n)) ** 0.4


def cramer_wold_normal(x: Tensor, gamma: float | None = None) -> Tensor:
    """Squared Cramér–Wold distance of a batch ``x (N, D)`` to N(0, I), in closed form (Tabor et al. 2018).

    Follows ``gmum/cwae-pytorch``, ``src/metrics/cw.py``, function ``cw``, term by term: with K = 1 / (2D − 3),
    1 / √(1 + γ) + (1/N²) Σᵢⱼ 1 / √(γ + K‖xᵢ − xⱼ‖²) − (2/N) Σᵢ 1 / √(γ + ½ + K‖xᵢ‖²) (the pair sum includes
    i = j, as there).
    """
    n, d = x.shape
    gamma = silverman(n) if gamma is None else gamma
    k = 1.0 / (2.0 * d - 3.0)
    pairs = (1.0 / torch.sqrt(gamma + k * squared_distances(x, x))).sum() / n**2
    single = (1.0 / torch.sqrt(gamma + 0.5 + k * x.pow(2).sum(1))).sum() * 2.0 / n
    return 1.0 / math.sqrt(1.0 + gamma) + pairs - single


def cramer_wold_samples(x: Tensor, y: Tensor, gamma: float | None = None) -> Tensor:
    """The two-sample Cramér–Wold distance between ``x`` and ``y`` (both ``(N, D)``): the official
    ``cw_sampling``, for priors with no closed form."""
    n, d = x.shape
    gamma = silverman(n) if gamma is None else gamma

    def phi(s: Tensor) -> Tensor:
        return (1.0 + 4.0 * s / (2.0 * d - 3.0)) ** -0.5

    t = 1.0 / (2.0 * n * n * math.sqrt(math.pi * gamma))
    a, b, c = (phi(squared_distances(p, q) / (4 * gamma)).sum() for p, q in ((x, x), (y, y), (x, y)))
    return t * (a + b - 2 * c)


class CramerWold(PriorMatching):
    """Cramér–Wold distance (CWAE), ``log(cw + 1e-7)`` as in their CelebA recipe (``log=true``).

    Exact for any diagonal Normal prior without prior samples: the codes are standardised by the prior's mean and
    variance, (z − μ) / σ, and compared with N(0, I) in closed form (the official form is hard-wired to
    N(0, I)). Other priors: the two-sample form against as many prior draws, after the same standardisation.

    Args:
        log: Take the logarithm (CWAE's loss) or use the distance itself.
        weight: λ.
    """

    min_batch = 2

    @checked
    def __init__(self, log: bool = True, weight: NonNegative = 1.0, **kwargs: bool) -> None:
        super().__init__(weight, **kwargs)
        self.log = bool(log)

    def compute(self, z: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        if prior.dim < CW_MIN_DIM:
            raise ValueError(
                f"CramerWold needs codes of at least {CW_MIN_DIM} dimensions (CWAE's closed form), got "
                f"{prior.dim}: raise model.latent_dim or choose another matching."
            )
        mean, std = prior.mean.to(z), prior.variance.to(z).sqrt()
        u = (z - mean) / std  # (B, d)
        if isinstance(prior, NormalPrior):
            cw = cramer_wold_normal(u)
        else:
            y = (prior.sample(z.shape[0], generator=generator).to(z) - mean) / std
            cw = cramer_wold_samples(u, y)
        return torch.log(cw + 1e-7) if self.log else cw

    def extra_repr(self) -> str:
        return f"log={self.log}, weight={self.weight}"


class Sinkhorn(SampleMatching):
    """Debiased Sinkhorn divergence S_ε between the codes and prior draws (Patrini et al. 2019; Feydy et al. 2019),
    geomloss's ``SamplesLoss("sinkhorn", p=2, debias=True)``: cost ‖x − y‖² / 2, ε = (blur · σ̄)², with σ̄ the
    prior's standard deviation averaged over dimensions (``blur`` is in its units). S_ε is 0 for equal sets and
    tends to W₂² / 2 as ε → 0.

    Args:
        blur: The entropic blur, in prior standard deviations.
        scaling: geomloss's ε-scaling ratio (closer to 1: more iterations, more accurate).
        weight: λ.
    """

    @checked
    def __init__(
        self,
        blur: Annotated[float, Gt(0)] = 0.1,
        scaling: Annotated[float, Gt(0)] = 0.5,
        weight: NonNegative = 1.0,
        **kwargs: bool,
    ) -> None:
        super().__init__(weight, **kwargs)
        if not scaling < 1:
            raise ValueError(f"Sinkhorn: scaling={scaling} must be < 1.")
        self.blur, self.scaling = float(blur), float(scaling)

    def distance(self, z: Tensor, y: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        from geomloss import SamplesLoss

        sigma = prior.variance.mean().sqrt().item()
        loss = SamplesLoss(
            "sinkhorn", p=2, blur=self.blur * sigma, scaling=self.scaling, debias=True, backend="tensorized"
        )
        return loss(z, y)

    def extra_repr(self) -> str:
        return f"blur={self.blur}, scaling={self.scaling}, weight={self.weight}"


def energy_distance(x: Tensor, y: Tensor, unbiased: bool = True) -> Tensor:
    """Energy distance 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (Székely & Rizzo). ``unbiased``: the within-set means
    leave out the diagonal (U-statistics, 0 in expectation for one distribution); else the V-statistic that
    scipy's ``energy_distance`` squares (it returns the square root)."""

    def dist(a: Tensor, b: Tensor) -> Tensor:  # ‖a − b‖ with a gradient at 0 (cdist's is NaN there)
        return (squared_distances(a, b) + 1e-12).sqrt()

    n, m = len(x), len(y)
    dxx, dyy = dist(x, x), dist(y, y)
    if unbiased:
        within_x = (dxx.sum() - dxx.diagonal().sum()) / (n * (n - 1))
        within_y = (dyy.sum() - dyy.diagonal().sum()) / (m * (m - 1))
    else:
        within_x = (dxx - dxx.diagonal().diag()).mean()
        within_y = (dyy - dyy.diagonal().diag()).mean()
    return 2 * dist(x, y).mean() - within_x - within_y


class Energy(SampleMatching):
    """Energy distance between the codes and prior draws (unbiased): no kernel bandwidth to tune, and
    scale-equivariant (scaling codes and prior by c scales it by c).

    Args:
        weight: λ.
    """

    min_batch = 2

    def distance(self, z: Tensor, y: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        return energy_distance(z, y)

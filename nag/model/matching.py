"""Prior-matching distances between a batch of codes and a prior.

Each distance is a plain ``nn.Module`` called as ``matching(z, prior, generator=None)`` and returns a float32
scalar. The training loss is ``recon + matching.weight * matching(z, prior)``: the weight λ lives with the
distance (``matching.weight=...`` on the command line) because its sensible range depends on the distance.

All distances run in float32 with autocast disabled: kernel sums and sorted projections lose too much in
half precision, and the loss must be comparable between mixed- and full-precision runs.

Adding a distance is one subclass here plus one yaml in ``conf/matching/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Len
from torch import Tensor, nn

from nag.config.params import Count, NonNegative, checked
from nag.model.priors import Prior

# WAE (Tolstikhin et al. 2018) sums the kernel over these multiples of the base scale 2·d·σ².
WAE_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances ``(n, d), (m, d) -> (n, m)``.

    Uses the expansion ||a||² + ||b||² − 2ab (clamped at 0) instead of ``torch.cdist``, whose gradient is NaN
    at zero distance (the diagonal of a set with itself).
    """
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1).unsqueeze(0) - 2 * a @ b.T  # (n, m)
    return sq.clamp_min(0)


def kernel_matrix(d2: Tensor, kernel: str, base_scale: float, scales: Sequence[float]) -> Tensor:
    """Multi-scale kernel on squared distances, summed over ``scales`` (one normalisation, no averaging).

    ``imq``: C / (C + d²); ``rbf``: exp(−d² / C), with C = base_scale · s for each s in ``scales``.
    """
    out = torch.zeros_like(d2)
    for s in scales:
        c = base_scale * s
        out = out + (c / (c + d2) if kernel == "imq" else torch.exp(-d2 / c))
    return out


def base_scale(prior: Prior) -> float:
    """WAE's kernel scale for a prior: 2·d·σ̄², with σ̄² the prior's variance averaged over dimensions."""
    return 2.0 * prior.dim * prior.variance.mean().item()


def mmd_unbiased(z: Tensor, y: Tensor, kernel: str, base_scale: float, scales: Sequence[float]) -> Tensor:
    """Unbiased estimate of MMD² between samples ``z (n, d)`` and ``y (m, d)``; exactly 0 in expectation
    when both come from the same distribution (it can be slightly negative).
    """
    n, m = z.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 codes and 2 prior samples, got {n} and {m}.")
    kzz = kernel_matrix(squared_distances(z, z), kernel, base_scale, scales)  # (n, n)
    kyy = kernel_matrix(squared_distances(y, y), kernel, base_scale, scales)  # (m, m)
    kzy = kernel_matrix(squared_distances(z, y), kernel, base_scale, scales)  # (n, m)
    # Drop the diagonals (k(x, x)) for the within-set U-statistics.
    szz = (kzz.sum() - kzz.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return szz + syy - 2 * kzy.mean()


def sliced_wasserstein(z: Tensor, y: Tensor, projections: Tensor, p: float = 2.0) -> Tensor:
    """Sliced Wasserstein distance to the power p, SW_p^p, averaged over the given directions.

    Args:
        z: Codes ``(n, d)``.
        y: Samples of the target ``(n, d)`` (same count: 1-D optimal transport pairs sorted values).
        projections: Unit directions ``(d, L)``.
        p: Ground-cost exponent; the cost is |·|^p (the absolute value matters for odd p).

    Returns:
        Scalar SW_p^p; ``(.)**(1/p)`` equals POT's ``sliced_wasserstein_distance`` on the same directions.
    """
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"sliced Wasserstein needs as many prior samples as codes, got {y.shape[0]} vs {z.shape[0]}.")
    # Project as (L, n) so each direction's values are contiguous for the sort (faster than sorting dim 0).
    pz = torch.sort(projections.T @ z.T, dim=1).values  # (L, n)
    py = torch.sort(projections.T @ y.T, dim=1).values  # (L, n)
    return (pz - py).abs().pow(p).mean()


def random_directions(d: int, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``n`` directions uniform on the unit sphere of R^d, as columns ``(d, n)``."""
    gen_device = generator.device if generator is not None else device
    theta = torch.randn(d, n, generator=generator, device=gen_device).to(device)  # (d, n)
    return theta / theta.norm(dim=0, keepdim=True)


class PriorMatching(nn.Module):
    """Base class. Subclasses implement ``compute(z, prior, generator)`` on float32 codes.

    Args:
        weight: λ, the factor of this term in the training loss (>= 0).
        global_batch: Under multi-process (DDP) training, compute the distance on the codes of all processes
            (gathered with their gradients) rather than on this process's share: MMD and SWD estimated on a
            small per-process batch are noisier, and a sum of per-process distances is not the distance of the
            global batch.
    """

    #: The fewest codes a batch must hold for the distance to be defined (data splits are checked against it).
    min_batch: int = 1

    @checked
    def __init__(self, weight: NonNegative = 1.0, global_batch: bool = True) -> None:
        super().__init__()
        self.weight = float(weight)
        self.global_batch = bool(global_batch)

    def forward(self, z: Tensor, prior: Prior, generator: torch.Generator | None = None) -> Tensor:
        if z.dim() != 2 or z.shape[1] != prior.dim:
            raise ValueError(f"codes of shape {tuple(z.shape)} do not match prior.dim={prior.dim}.")
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.compute(z.float(), prior, generator)

    def compute(self, z: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


class NoMatching(PriorMatching):
    """The plain autoencoder: no pull on the codes (the prior still draws the sample grids)."""

    @checked
    def __init__(self, weight: NonNegative = 0.0, **kwargs: bool) -> None:
        super().__init__(weight, **kwargs)

    def compute(self, z: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        return z.new_zeros(())


class SampleMatching(PriorMatching):
    """A distance between the codes and an equally large batch of fresh prior samples."""

    def compute(self, z: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        y = prior.sample(z.shape[0], generator=generator).to(z)  # (B, d)
        return self.distance(z, y, prior, generator)

    def distance(self, z: Tensor, y: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


class Pointwise(SampleMatching):
    """The report's literal recipe: mean squared distance between each code and an independent prior draw.

    Since y is independent of z, E‖z − y‖² = ‖z − μ‖² + tr Σ: the only thing it optimises is the distance of
    every code to the prior *mean*. It shifts codes toward μ and shrinks their spread, it never shapes their
    distribution; its minimum collapses all codes onto μ.
    """

    def distance(self, z: Tensor, y: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        return (z - y).pow(2).mean()


class MMD(SampleMatching):
    """Unbiased multi-scale MMD² (WAE-MMD) with an inverse multiquadric or Gaussian kernel.

    The base scale is 2·d·σ̄² (σ̄² the prior's mean variance), as WAE sets C for a Gaussian prior; the
    kernel sums over ``scales`` multiples of it so both near and far codes feel a gradient.

    Args:
        kernel: ``imq`` or ``rbf``.
        scales: Multiples of the base scale to sum over.
        weight: λ.
    """

    min_batch = 2  # the within-set U-statistic needs pairs

    @checked
    def __init__(
        self,
        kernel: Literal["imq", "rbf"] = "imq",  # noqa: UP037  (values, not quoted annotations)
        scales: Annotated[Sequence[float], Len(1), Gt(0)] = WAE_SCALES,
        weight: NonNegative = 1.0,
        **kwargs: bool,
    ) -> None:
        super().__init__(weight, **kwargs)
        self.kernel = kernel
        self.scales = tuple(float(s) for s in scales)

    def distance(self, z: Tensor, y: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        return mmd_unbiased(z, y, self.kernel, base_scale(prior), self.scales)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, scales={self.scales}, weight={self.weight}"


class SlicedWasserstein(SampleMatching):
    """Sliced Wasserstein distance SW_p^p over ``n_projections`` random directions (SWAE, Kolouri 2019).

    Args:
        n_projections: Random unit directions drawn afresh at each call.
        p: Ground-cost exponent.
        weight: λ.
    """

    @checked
    def __init__(
        self, n_projections: Count = 50, p: Annotated[float, Ge(1)] = 2.0, weight: NonNegative = 1.0, **kwargs: bool
    ) -> None:
        super().__init__(weight, **kwargs)
        self.n_projections = int(n_projections)
        self.p = float(p)

    def distance(self, z: Tensor, y: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        theta = random_directions(z.shape[1], self.n_projections, generator, z.device)  # (d, L)
        return sliced_wasserstein(z, y, theta, self.p)

    def extra_repr(self) -> str:
        return f"n_projections={self.n_projections}, p={self.p}, weight={self.weight}"


class Moments(PriorMatching):
    """Match per-dimension mean, variance and Pearson kurtosis of the batch to the prior's closed forms.

    The report names these three statistics (mean 0, variance 2, kurtosis 3). Each term is a mean over
    dimensions of the squared error; the batch estimates are biased for small batches, so the loss is
    not exactly 0 in expectation when z ~ prior (it is consistent as B grows).

    Args:
        mean_weight, variance_weight, kurtosis_weight: Factors of the three terms.
        weight: λ.
    """

    min_batch = 2  # a variance needs two codes

    @checked
    def __init__(
        self,
        mean_weight: NonNegative = 1.0,
        variance_weight: NonNegative = 1.0,
        kurtosis_weight: NonNegative = 0.1,
        weight: NonNegative = 1.0,
        **kwargs: bool,
    ) -> None:
        super().__init__(weight, **kwargs)
        self.term_weights = (float(mean_weight), float(variance_weight), float(kurtosis_weight))

    def compute(self, z: Tensor, prior: Prior, generator: torch.Generator | None) -> Tensor:
        mean, var, kurt = batch_moments(z)
        wm, wv, wk = self.term_weights
        return (
            wm * (mean - prior.mean).pow(2).mean()
            + wv * (var - prior.variance).pow(2).mean()
            + wk * (kurt - prior.kurtosis).pow(2).mean()
        )


def batch_moments(z: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """Per-dimension mean, (biased) variance and Pearson kurtosis of codes ``(B, d) -> 3 × (d,)``."""
    mean = z.mean(0)
    c = z - mean
    var = c.pow(2).mean(0)
    kurt = c.pow(4).mean(0) / (var.pow(2) + eps)
    return mean, var, kurt

"""Target distributions p(z) for the latent codes.

Every prior is an ``nn.Module`` whose parameters are *buffers*: they move with the LightningModule to the
right device and are stored in its ``state_dict``, so a reloaded checkpoint samples from the prior it was
trained with. Sampling is written out by hand (rather than ``torch.distributions.*.sample``) because only
that way it accepts a ``torch.Generator`` and is reproducible; ``log_prob`` delegates to
``torch.distributions``.

Adding a prior is one subclass plus one yaml in ``conf/prior/``; its constructor's annotations declare its
parameters' types and ranges (:mod:`nag.config.params`), checked when a config is composed and when it is built.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Laplace, MixtureSameFamily, Normal

from nag.config.errors import ConfigError
from nag.config.params import Count, Floats, NonNegative, OneOrLength, Positive, PositiveFloats, checked

Scalar = Floats


def _per_dim(value: Scalar, dim: int) -> Tensor:
    """Broadcast a scalar or per-dimension list (checked by the declaration) to a ``(dim,)`` float tensor."""
    t = torch.as_tensor(value, dtype=torch.float32).flatten()
    return t.expand(dim).clone() if t.numel() == 1 else t


class Prior(nn.Module):
    """Base class: a product or mixture distribution over ``R^dim``.

    Subclasses implement ``distribution()`` (a ``torch.distributions`` object with event shape ``(dim,)``),
    ``_standard_sample``, and the closed-form per-dimension ``mean``, ``variance`` and ``kurtosis``.
    """

    @checked
    def __init__(self, dim: Count) -> None:
        super().__init__()
        self.dim = int(dim)

    def distribution(self) -> Distribution:
        raise NotImplementedError

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` codes, ``(n, dim)``, on the prior's device; reproducible given ``generator``.

        The noise is drawn on the generator's device (CPU for a CPU generator), so a fixed generator gives the
        same codes on every accelerator.
        """
        return self._draw(n, generator).to(self.mean.device)

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density of each code, ``(B, dim) -> (B,)``."""
        return self.distribution().log_prob(z.float())

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError

    @property
    def kurtosis(self) -> Tensor:
        """Per-dimension Pearson kurtosis E[(z-mu)^4]/sigma^4 (3 for a Gaussian)."""
        raise NotImplementedError

    def _noise_device(self, generator: torch.Generator | None) -> torch.device:
        return generator.device if generator is not None else self.mean.device

    def extra_repr(self) -> str:
        m, v = self.mean, self.variance
        return f"dim={self.dim}, mean≈{m.mean().item():.3g}, variance≈{v.mean().item():.3g}"


class LocationScalePrior(Prior):
    """A product of independent copies of one standardised law, shifted and scaled per dimension:
    z = mean + sqrt(variance) · ε, with ε of mean 0 and variance 1.

    Subclasses give the law: ``_standard_noise`` (ε), ``distribution`` and its constant ``KURTOSIS``.

    Args:
        dim: Latent dimension.
        mean: Mean, one value or ``dim`` values.
        variance: Variance (not standard deviation), one value or ``dim`` values, > 0.
    """

    KURTOSIS: float

    @checked
    def __init__(
        self,
        dim: Count,
        mean: Annotated[Floats, OneOrLength("dim")] = 0.0,
        variance: Annotated[PositiveFloats, OneOrLength("dim")] = 1.0,
    ) -> None:
        super().__init__(dim)
        self.register_buffer("loc", _per_dim(mean, self.dim))
        self.register_buffer("var", _per_dim(variance, self.dim))

    def _standard_noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        eps = self._standard_noise(n, generator)  # (n, d), mean 0, variance 1
        return self.loc.to(eps.device) + self.var.sqrt().to(eps.device) * eps

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return self.var

    @property
    def kurtosis(self) -> Tensor:
        return torch.full_like(self.loc, self.KURTOSIS)


class NormalPrior(LocationScalePrior):
    """Diagonal Gaussian N(mean, diag(variance)); mean and variance are scalars or per-dimension lists."""

    KURTOSIS = 3.0

    def distribution(self) -> Distribution:
        return Independent(Normal(self.loc, self.var.sqrt()), 1)

    def _standard_noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randn(n, self.dim, generator=generator, device=self._noise_device(generator))


class LaplacePrior(LocationScalePrior):
    """Product of independent Laplace distributions, parameterised by mean and *variance* (= 2·scale²).

    Heavier-tailed than the Gaussian (kurtosis 6): a prior whose moments differ beyond the second,
    which the ``moments`` matching loss can tell apart from a Gaussian of the same variance.
    """

    KURTOSIS = 6.0

    def distribution(self) -> Distribution:
        return Independent(Laplace(self.loc, (self.var / 2).sqrt()), 1)

    def _standard_noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        return laplace_quantile(torch.rand(n, self.dim, generator=generator, device=self._noise_device(generator)))


def laplace_quantile(r: Tensor) -> Tensor:
    """The Laplace law of mean 0 and variance 1 at probabilities ``r`` in [0, 1): its inverse CDF.

    ``torch.rand`` can return exactly 0, so ``u = r − 1/2`` is clamped away from ±1/2 (log never sees 0); a
    standard Laplace (scale 1) has variance 2, hence the 1/sqrt(2).
    """
    u = (r - 0.5).clamp(-0.5 + 1e-7, 0.5 - 1e-7)
    return -torch.sign(u) * torch.log1p(-2 * u.abs()) / 2**0.5


class GaussianMixturePrior(Prior):
    """Equal-weight mixture of K isotropic Gaussians whose centres lie on the ±``radius`` corners of the
    first coordinates (component k has +radius on dimension ``k // 2`` if k is even, −radius if odd).

    A multi-modal prior: decoding samples from it tests whether the codes really split into the modes.

    Args:
        dim: Latent dimension.
        n_components: Number of components K, ``2 <= K <= 2*dim``.
        radius: Distance of each centre from the origin.
        variance: Variance of every component along every dimension.
    """

    @checked
    def __init__(
        self, dim: Count, n_components: Annotated[int, Ge(2)] = 4, radius: NonNegative = 3.0, variance: Positive = 1.0
    ) -> None:
        super().__init__(dim)
        if n_components > 2 * self.dim:  # the centres sit at ±radius on the axes: two per dimension
            raise ConfigError(f"GaussianMixturePrior: n_components={n_components} must be <= 2 * dim = {2 * self.dim}.")
        centres = torch.zeros(n_components, self.dim)
        for k in range(n_components):
            centres[k, k // 2] = radius if k % 2 == 0 else -radius
        self.register_buffer("centres", centres)  # (K, d)
        self.register_buffer("component_var", torch.tensor(float(variance)))

    def distribution(self) -> Distribution:
        k = self.centres.shape[0]
        mix = torch.distributions.Categorical(torch.full((k,), 1.0 / k, device=self.centres.device))
        comp = Independent(Normal(self.centres, self.component_var.sqrt().expand_as(self.centres)), 1)
        return MixtureSameFamily(mix, comp)

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        device = self._noise_device(generator)
        k = self.centres.shape[0]
        idx = torch.randint(k, (n,), generator=generator, device=device)  # (n,)
        eps = torch.randn(n, self.dim, generator=generator, device=device)  # (n, d)
        return self.centres.to(device)[idx] + self.component_var.sqrt().to(device) * eps

    @property
    def mean(self) -> Tensor:
        return self.centres.mean(0)

    @property
    def variance(self) -> Tensor:
        # Law of total variance: within-component + between-centre spread.
        return self.component_var + self.centres.var(0, unbiased=False)

    @property
    def kurtosis(self) -> Tensor:
        # Fourth central moment of a mixture of N(c_k, s²): mean over k of (dc⁴ + 6 dc² s² + 3 s⁴).
        dc = self.centres - self.mean  # (K, d)
        s2 = self.component_var
        m4 = (dc**4 + 6 * dc**2 * s2 + 3 * s2**2).mean(0)
        return m4 / self.variance**2


def describe(prior: Prior) -> str:
    """One-line human description used in figure captions and reports."""
    m, v = prior.mean, prior.variance
    same = bool(torch.allclose(m, m[0].expand_as(m))) and bool(torch.allclose(v, v[0].expand_as(v)))
    if same:
        return f"{type(prior).__name__}(mean={m[0].item():g}, variance={v[0].item():g}, dim={prior.dim})"
    return f"{type(prior).__name__}(dim={prior.dim}, |mean|={m.norm().item():.3g}, avg variance={v.mean().item():.3g})"


__all__ = [
    "Prior",
    "LocationScalePrior",
    "NormalPrior",
    "LaplacePrior",
    "GaussianMixturePrior",
    "describe",
    "fixed_draw",
    "laplace_quantile",
    "translated",
]


def fixed_draw(prior: Prior, n: int, seed: int = 0) -> Tensor:
    """The same ``n`` draws of ``prior`` on every call (noise drawn on the CPU, so on every device too)."""
    return prior.sample(n, generator=torch.Generator().manual_seed(seed))


def translated(codes: Tensor, prior: Prior, mean: float) -> Tensor:
    """Draws of ``prior`` moved so the distribution's mean is ``mean`` in every dimension (the report's probes)."""
    return codes - prior.mean.to(codes) + mean

"""Where generated codes come from: the prior, or a density fitted to the training codes after training.

The ex-post density (Ghosh et al. 2020, RAE) makes *any* autoencoder generative, the plain one included:
fit a Gaussian mixture to the codes of the training images, then decode its samples. Comparing it with
prior sampling separates "the decoder cannot make faces" from "the prior misses where the codes live".
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor

from nag.config.errors import UserInputError
from nag.config.params import Count, checked
from nag.model.priors import Prior, fixed_draw


@runtime_checkable
class Sampler(Protocol):
    """Where generated codes come from: ``fit`` on the training codes (and the prior), then ``sample(n, seed)``
    codes ``(n, d)`` on the CPU. ``needs_codes``: whether ``fit`` reads the codes (the prior sampler does not)."""

    name: str
    needs_codes: bool

    def fit(self, codes: Tensor, prior: Prior) -> Sampler: ...

    def sample(self, n: int, seed: int = 0) -> Tensor: ...


#: The sampler names ``nag.compare --samplers`` and ``Run.sample`` accept (``gmm<k>``: k components).
SAMPLER_NAMES = ("prior", "gaussian", "gmm", "gmm<k>", "gmm_bic", "kde", "flow", "two_stage")
#: The most components ``gmm<k>`` may ask for (each needs two training codes; 5000 are fitted).
MAX_COMPONENTS = 500


def make_sampler(name: str, store: str | None = None, key: str = "sampler") -> Any:
    """A fresh sampler by name, with the defaults of its class (``conf/sampler/<name>.yaml`` sets the same);
    ``store``: where a flow keeps its fit (a run's ``samplers/``); ``key``: what named it, for the message."""
    from nag.samplers.flow import FlowSampler

    if name == "prior":
        return PriorSampler()
    if name == "gaussian":
        return GaussianMixtureSampler(1)
    if name == "gmm":
        return GaussianMixtureSampler()
    if name.startswith("gmm") and name[3:].isdigit() and 1 <= int(name[3:]) <= MAX_COMPONENTS:
        return GaussianMixtureSampler(int(name[3:]))  # gmm<k>: k components (gmm50: small modes get their own)
    if name == "gmm_bic":
        return BICGaussianMixtureSampler()
    if name == "kde":
        return KernelDensitySampler()
    if name == "flow":
        return FlowSampler(store=store)
    if name == "two_stage":
        from nag.samplers.two_stage import TwoStageVAESampler

        return TwoStageVAESampler(store=store)
    raise UserInputError(
        f"{key}: {name!r} is not a sampler; choose from {', '.join(SAMPLER_NAMES)} (k from 1 to {MAX_COMPONENTS})."
    )


class PriorSampler:
    """Sample the prior (the model's own, or the one given to ``nag.evaluate``). ``fit`` only stores it."""

    name = "prior"
    needs_codes = False

    def fit(self, codes: Tensor, prior: Prior) -> PriorSampler:
        self.prior = prior
        return self

    def sample(self, n: int, seed: int = 0) -> Tensor:
        return fixed_draw(self.prior, n, seed).cpu()


class GaussianMixtureSampler:
    """A Gaussian mixture fitted to the training codes with scikit-learn (``n_components=1`` with a full
    covariance is the single-Gaussian ex-post density).

    Args:
        n_components: Mixture components.
        covariance_type: scikit-learn's ``full``, ``diag``, ``tied`` or ``spherical``.
        seed: Seed of the fit and of sampling.
    """

    needs_codes = True

    @checked
    def __init__(
        self,
        n_components: Count = 10,
        covariance_type: Literal["full", "tied", "diag", "spherical"] = "full",  # noqa: UP037
        seed: int = 0,
    ) -> None:
        self.n_components, self.covariance_type, self.seed = n_components, covariance_type, seed
        self.name = "gaussian" if n_components == 1 else f"gmm{n_components}"

    def fit(self, codes: Tensor, prior: Prior) -> GaussianMixtureSampler:
        if len(codes) < 2 * self.n_components:
            raise ValueError(
                f"sampler.n_components={self.n_components} needs at least {2 * self.n_components} training codes, "
                f"got {len(codes)}."
            )
        self.gmm = GaussianMixture(
            self.n_components, covariance_type=self.covariance_type, reg_covar=1e-5, random_state=self.seed
        ).fit(codes.detach().double().cpu().numpy())
        return self

    def sample(self, n: int, seed: int = 0) -> Tensor:
        self.gmm.random_state = np.random.RandomState(self.seed + seed)
        z, _ = self.gmm.sample(n)
        # sklearn returns the samples grouped by component: shuffle so grids mix them.
        z = z[np.random.default_rng(seed).permutation(n)]
        return torch.from_numpy(z).float()


class BICGaussianMixtureSampler(GaussianMixtureSampler):
    """A full-covariance Gaussian mixture whose size is chosen by the Bayesian information criterion over
    ``candidates`` (scikit-learn's ``GaussianMixture.bic``): as many components as the codes support, so a small
    mode of the codes can get a component of its own without a size fixed in advance.

    Args:
        candidates: The component counts tried (those needing more than half the codes are skipped).
        seed: Seed of the fits and of sampling.
    """

    @checked
    def __init__(self, candidates: tuple[Count, ...] = (1, 2, 5, 10, 20, 50), seed: int = 0) -> None:
        super().__init__(n_components=1, seed=seed)
        self.candidates = tuple(candidates)
        self.name = "gmm_bic"
        self.bic: dict[int, float] = {}

    def fit(self, codes: Tensor, prior: Prior) -> BICGaussianMixtureSampler:
        x = codes.detach().double().cpu().numpy()
        tried = [k for k in self.candidates if 2 * k <= len(x)]
        if not tried:
            raise ValueError(f"sampler.candidates={list(self.candidates)} all need more than {len(x)} training codes.")
        fits = {
            k: GaussianMixture(k, covariance_type="full", reg_covar=1e-5, random_state=self.seed).fit(x) for k in tried
        }
        self.bic = {k: float(g.bic(x)) for k, g in fits.items()}
        self.n_components = min(self.bic, key=self.bic.__getitem__)
        self.gmm = fits[self.n_components]
        return self


class KernelDensitySampler:
    """A Gaussian kernel density on the training codes (scikit-learn's ``KernelDensity``), in coordinates
    standardised per dimension: a sample is a training code plus kernel noise, so every mode of the codes, however
    small, is drawn as often as codes sit in it. The bandwidth is chosen by held-out log-likelihood (5-fold,
    ``GridSearchCV``) among ``bandwidths`` × Scott's factor n^(−1/(d+4)).

    Args:
        bandwidths: Multiples of Scott's factor tried.
        seed: Seed of the bandwidth search's folds and of sampling.
    """

    name = "kde"
    needs_codes = True

    @checked
    def __init__(self, bandwidths: tuple[float, ...] = (0.25, 0.5, 1.0), seed: int = 0) -> None:
        if not bandwidths or min(bandwidths) <= 0:
            raise UserInputError(f"sampler.bandwidths={list(bandwidths)}: give positive multiples of Scott's factor.")
        self.bandwidths, self.seed = tuple(bandwidths), seed

    def fit(self, codes: Tensor, prior: Prior) -> KernelDensitySampler:
        from sklearn.model_selection import GridSearchCV, KFold
        from sklearn.neighbors import KernelDensity

        x = codes.detach().double().cpu().numpy()
        if len(x) < 10:
            raise ValueError(f"a kernel density needs at least 10 training codes, got {len(x)}.")
        self.mean, self.std = x.mean(0), x.std(0) + 1e-8
        z = (x - self.mean) / self.std  # (n, d)
        scott = len(z) ** (-1.0 / (z.shape[1] + 4))
        search = GridSearchCV(
            KernelDensity(kernel="gaussian"),
            {"bandwidth": [b * scott for b in self.bandwidths]},
            cv=KFold(5, shuffle=True, random_state=self.seed),
        ).fit(z)
        self.kde, self.bandwidth = search.best_estimator_, float(search.best_params_["bandwidth"])
        return self

    def sample(self, n: int, seed: int = 0) -> Tensor:
        z = self.kde.sample(n, random_state=self.seed + seed)  # (n, d), standardised
        return torch.from_numpy(z * self.std + self.mean).float()

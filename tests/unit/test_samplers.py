"""The ex-post samplers that size themselves: a BIC-chosen Gaussian mixture and a kernel density on the codes
(#32 §4: samplers that put mass on small modes), on codes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nag.config.errors import UserInputError
from nag.samplers.core import BICGaussianMixtureSampler, KernelDensitySampler, make_sampler


def two_modes(n_small: int = 30, n: int = 1000, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A large mode at 0 and a small one (``n_small`` of ``n``) at (6, 6), each of std 0.3, times ``scale``."""
    g = torch.Generator().manual_seed(seed)
    big = torch.randn(n - n_small, 2, generator=g) * 0.3
    small = torch.randn(n_small, 2, generator=g) * 0.3 + torch.tensor([6.0, 6.0])
    return torch.cat([big, small]) * scale


def share_near(z: torch.Tensor, centre: torch.Tensor, radius: float) -> float:
    return float(((z - centre).norm(dim=1) < radius).float().mean())


def test_bic_chooses_as_many_components_as_the_codes_hold() -> None:
    two = BICGaussianMixtureSampler().fit(two_modes(), prior=None)
    assert two.n_components == 2 and two.bic[2] == min(two.bic.values())
    assert set(two.bic) == {1, 2, 5, 10, 20, 50}
    one = BICGaussianMixtureSampler().fit(torch.randn(1000, 3, generator=torch.Generator().manual_seed(1)), None)
    assert one.n_components == 1
    few = BICGaussianMixtureSampler().fit(two_modes(n_small=5, n=40), None)
    assert set(few.bic) == {1, 2, 5, 10, 20}, "50 components would need 100 codes"


@pytest.mark.parametrize("name", ["gmm_bic", "kde"])
def test_a_three_percent_mode_is_sampled_three_percent_of_the_time_in_the_codes_scale(name: str) -> None:
    codes = two_modes(scale=40.0) - 3.0  # far from unit scale: samples must come back in the codes' own
    sampler = make_sampler(name).fit(codes, prior=None)
    z = sampler.sample(20_000, seed=1)
    assert z.shape == (20_000, 2) and z.dtype == torch.float32
    assert share_near(z, torch.tensor([237.0, 237.0]), 80.0) == pytest.approx(0.03, abs=0.006)
    assert share_near(z, torch.tensor([-3.0, -3.0]), 80.0) == pytest.approx(0.97, abs=0.006)
    torch.testing.assert_close(z.mean(0), codes.mean(0), atol=3.0, rtol=0)
    torch.testing.assert_close(z.std(0), codes.std(0), atol=0.0, rtol=0.05)
    assert torch.equal(sampler.sample(8, seed=2), sampler.sample(8, seed=2)), "a seed draws the same codes"
    assert not torch.equal(sampler.sample(8, seed=2), sampler.sample(8, seed=3))


def test_the_kernel_density_bandwidth_is_chosen_by_held_out_likelihood() -> None:
    """On two tight modes the smallest multiple of Scott's factor fits best; a single spread-out Gaussian, which
    the rule of thumb is made for, prefers the largest."""
    tight = KernelDensitySampler().fit(two_modes(n_small=300), prior=None)
    scott = 1000 ** (-1 / 6)
    assert tight.bandwidth == pytest.approx(0.25 * scott)
    wide = KernelDensitySampler(bandwidths=(0.05, 1.0)).fit(torch.randn(1000, 2), prior=None)
    assert wide.bandwidth == pytest.approx(1.0 * scott)


def test_bad_settings_and_too_few_codes_are_named() -> None:
    with pytest.raises(UserInputError, match="sampler.bandwidths"):
        KernelDensitySampler(bandwidths=(0.5, -1.0))
    with pytest.raises(ValueError, match="at least 10 training codes"):
        KernelDensitySampler().fit(torch.randn(5, 2), prior=None)
    with pytest.raises(ValueError, match="sampler.candidates"):
        BICGaussianMixtureSampler(candidates=(5,)).fit(torch.randn(6, 2), prior=None)


def test_each_name_makes_its_sampler_and_the_prior_draws_seed_0_by_default() -> None:
    from nag.model.priors import NormalPrior

    assert (make_sampler("gaussian").name, make_sampler("gaussian").n_components) == ("gaussian", 1)
    assert (make_sampler("gmm").name, make_sampler("gmm").n_components) == ("gmm10", 10)
    assert make_sampler("gmm50").n_components == 50 and make_sampler("prior").name == "prior"
    with pytest.raises(
        UserInputError, match=r"^--samplers: 'gmm0' is not a sampler; choose from prior, gaussian, gmm, "
    ):
        make_sampler("gmm0", key="--samplers")
    prior = make_sampler("prior").fit(None, NormalPrior(3))
    assert torch.equal(prior.sample(5), prior.sample(5, seed=0)) and not torch.equal(
        prior.sample(5), prior.sample(5, 1)
    )


def test_the_named_mixtures_span_one_to_the_most_components_and_flow_is_the_flow() -> None:
    from nag.samplers.core import MAX_COMPONENTS
    from nag.samplers.flow import FlowSampler

    assert make_sampler("gmm1").n_components == 1 and make_sampler("gmm12").n_components == 12
    assert make_sampler(f"gmm{MAX_COMPONENTS}").n_components == MAX_COMPONENTS
    with pytest.raises(UserInputError, match=f"'gmm{MAX_COMPONENTS + 1}' is not a sampler"):
        make_sampler(f"gmm{MAX_COMPONENTS + 1}")
    assert isinstance(make_sampler("flow"), FlowSampler)
    codes = two_modes()
    gmm = make_sampler("gmm2").fit(codes, prior=None)
    assert torch.equal(gmm.sample(6), gmm.sample(6, seed=0)) and not torch.equal(gmm.sample(6), gmm.sample(6, 1))


def test_the_kernel_density_is_scikit_learns_search_and_sampler_in_standardised_coordinates() -> None:
    """The same steps written out with scikit-learn: standardise per dimension, 5 shuffled folds seeded by the
    sampler's seed choose among the bandwidths (here many, close together, so that the folds matter), then draw with
    seed + the sample's seed and map back to the codes' scale."""
    import numpy as np
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KernelDensity

    codes = torch.randn(60, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([7.0, 0.5]) + 5.0
    multiples = tuple(np.linspace(0.2, 1.6, 57).tolist())
    kde = KernelDensitySampler(bandwidths=multiples, seed=3).fit(codes, prior=None)
    x = codes.double().numpy()
    mean, std = x.mean(0), x.std(0) + 1e-8
    z = (x - mean) / std
    scott = len(z) ** (-1 / 6)
    search = GridSearchCV(
        KernelDensity(kernel="gaussian"),
        {"bandwidth": [b * scott for b in multiples]},
        cv=KFold(5, shuffle=True, random_state=3),
    ).fit(z)
    assert kde.bandwidth == search.best_params_["bandwidth"]
    expected = search.best_estimator_.sample(50, random_state=3 + 2) * std + mean
    assert np.allclose(kde.sample(50, seed=2).numpy(), expected, atol=1e-5)
    assert torch.equal(kde.sample(7), kde.sample(7, seed=0))
    for folds in (KFold(5, shuffle=True, random_state=4), KFold(6, shuffle=True, random_state=3)):
        other = GridSearchCV(KernelDensity(), {"bandwidth": [b * scott for b in multiples]}, cv=folds).fit(z)
        assert other.best_params_["bandwidth"] != kde.bandwidth, "the folds must decide between these bandwidths"
    KernelDensitySampler().fit(codes[:10], prior=None)  # ten codes are enough; nine are not
    with pytest.raises(ValueError, match="at least 10 training codes, got 9"):
        KernelDensitySampler().fit(codes[:9], prior=None)


def test_the_bic_mixture_is_scikit_learns_fit_with_the_samplers_seed() -> None:
    import numpy as np
    from sklearn.mixture import GaussianMixture

    codes = two_modes(n_small=40, n=200, seed=5)
    fitted = BICGaussianMixtureSampler(candidates=(1, 2, 5), seed=7).fit(codes, prior=None)
    x = codes.double().numpy()
    for k in (1, 2, 5):
        reference = GaussianMixture(k, covariance_type="full", reg_covar=1e-5, random_state=7).fit(x)
        assert fitted.bic[k] == pytest.approx(reference.bic(x), rel=1e-9)
    assert np.allclose(fitted.gmm.means_, GaussianMixture(2, reg_covar=1e-5, random_state=7).fit(x).means_)


def test_a_mixture_needs_two_codes_per_component() -> None:
    codes = two_modes(n_small=2, n=10)
    assert make_sampler("gmm5").fit(codes, prior=None).sample(3).shape == (3, 2)  # 10 codes, 5 components: enough
    with pytest.raises(ValueError, match=r"n_components=6 needs at least 12 training codes, got 10"):
        make_sampler("gmm6").fit(codes, prior=None)


def test_the_mixture_is_scikit_learns_with_our_covariance_type_regularisation_and_seed() -> None:
    """The fitted mixture equals scikit-learn's own with the same settings (reg_covar 1e-5, random_state the
    seed): its means to the bit; a constant code dimension's variance is the regularisation itself."""
    from sklearn.mixture import GaussianMixture

    from nag.model.priors import NormalPrior
    from nag.samplers.core import GaussianMixtureSampler

    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(300, 3, generator=g), torch.full((300, 1), 2.0)], 1)
    codes[:100, 0] += 6.0
    for kind in ("full", "diag"):
        fitted = GaussianMixtureSampler(3, kind, seed=4).fit(codes, NormalPrior(4))
        ref = GaussianMixture(3, covariance_type=kind, reg_covar=1e-5, random_state=4).fit(codes.double().numpy())
        assert fitted.gmm.covariances_.shape == ref.covariances_.shape
        assert np.array_equal(fitted.gmm.means_, ref.means_) and np.array_equal(fitted.gmm.weights_, ref.weights_)
        var = fitted.gmm.covariances_[..., 3, 3] if kind == "full" else fitted.gmm.covariances_[:, 3]
        assert np.allclose(var, 1e-5, rtol=1e-6), "a constant dimension's variance is reg_covar"
    other = GaussianMixture(3, reg_covar=1e-5, random_state=5).fit(codes.double().numpy())
    assert not np.array_equal(GaussianMixtureSampler(3, seed=4).fit(codes, NormalPrior(4)).gmm.means_, other.means_)

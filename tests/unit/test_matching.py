"""Prior-matching distances: known answers, monotonicity, references (POT, O(n²) loops), precision."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from nag.model.matching import (
    MMD,
    WAE_SCALES,
    Moments,
    NoMatching,
    Pointwise,
    SlicedWasserstein,
    base_scale,
    mmd_unbiased,
    random_directions,
    sliced_wasserstein,
)
from nag.model.priors import NormalPrior

D = 8
PRIOR = NormalPrior(D, mean=-3.0, variance=2.0)
SAMPLE_BASED = {
    "mmd_imq": MMD("imq"),
    "mmd_rbf": MMD("rbf"),
    "swd": SlicedWasserstein(n_projections=200),
}
ALL = {**SAMPLE_BASED, "pointwise": Pointwise(), "moments": Moments()}


def codes(n: int, shift: float = 0.0, var_factor: float = 1.0, seed: int = 0) -> torch.Tensor:
    """n codes from PRIOR, then shifted by `shift` and with variance scaled by `var_factor`, (n, D)."""
    z = PRIOR.sample(n, generator=torch.Generator().manual_seed(seed))
    return PRIOR.mean + (z - PRIOR.mean) * var_factor**0.5 + shift


def value(loss, z: torch.Tensor, seed: int = 1) -> float:
    return loss(z, PRIOR, generator=torch.Generator().manual_seed(seed)).item()


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_unbiased_mmd_is_zero_in_expectation_when_codes_follow_the_prior(kernel) -> None:
    vals = np.array([value(MMD(kernel), codes(128, seed=s), seed=1000 + s) for s in range(40)])
    shifted = value(MMD(kernel), codes(128, shift=0.5))
    # Mean within 3 standard errors of 0, and far below a small shift's value.
    assert abs(vals.mean()) < 3 * vals.std(ddof=1) / np.sqrt(len(vals))
    assert (vals < 0).any(), "an unbiased estimator must sometimes be negative"
    assert shifted > 10 * vals.std()


@pytest.mark.parametrize("name", list(ALL))
def test_grows_monotonically_with_a_mean_shift(name) -> None:
    vals = [value(ALL[name], codes(1024, shift=s)) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False)), vals


@pytest.mark.parametrize("name", ["mmd_imq", "mmd_rbf", "swd", "moments"])
def test_grows_monotonically_with_a_variance_mismatch(name) -> None:
    up = [value(ALL[name], codes(1024, var_factor=f)) for f in (1.0, 1.5, 2.0, 4.0)]
    down = [value(ALL[name], codes(1024, var_factor=f)) for f in (1.0, 0.5, 0.25, 0.05)]
    assert all(a < b for a, b in zip(up, up[1:], strict=False)), up
    assert all(a < b for a, b in zip(down, down[1:], strict=False)), down


def test_pointwise_only_sees_the_distance_to_the_prior_mean() -> None:
    # E|z - y|² per element = mean (z - mu)² + sigma²: it rewards shrinking codes onto the mean.
    z = codes(4096, var_factor=0.25)
    expected = ((z - PRIOR.mean) ** 2).mean().item() + 2.0
    assert value(Pointwise(), z) == pytest.approx(expected, rel=0.03)
    collapsed = PRIOR.mean.expand(64, D)
    assert value(Pointwise(), collapsed) < value(Pointwise(), codes(64)), "collapse onto the mean scores better"


def test_moments_loss_is_zero_for_exact_moments() -> None:
    # Codes with exactly the prior's mean and variance per dimension and Gaussian-like kurtosis ~3.
    z = codes(100_000)
    assert value(Moments(), z) < 1e-3


@pytest.mark.parametrize("name", list(ALL))
def test_gradients_are_finite_and_nonzero(name) -> None:
    z = codes(64, shift=1.0).requires_grad_(True)
    ALL[name](z, PRIOR, generator=torch.Generator().manual_seed(0)).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_gradients_finite_for_duplicate_codes() -> None:
    z = torch.zeros(16, D, requires_grad=True)  # all distances 0: torch.cdist would give NaN here
    MMD("imq")(z, PRIOR).backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", list(ALL))
def test_deterministic_given_the_generator(name) -> None:
    z = codes(64, shift=0.3)
    assert value(ALL[name], z, seed=5) == value(ALL[name], z, seed=5)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_swd_agrees_with_pot_on_the_same_projections(p) -> None:
    z, y = codes(200, shift=0.7, var_factor=1.5), codes(200, seed=9)
    theta = random_directions(D, 64, torch.Generator().manual_seed(2), torch.device("cpu"))  # (D, L)
    ours = sliced_wasserstein(z.double(), y.double(), theta.double(), p=p).item() ** (1 / p)
    ref = ot.sliced_wasserstein_distance(
        z.double().numpy(), y.double().numpy(), p=p, projections=theta.double().numpy()
    )
    assert ours == pytest.approx(float(ref), rel=1e-6)


def test_swd_of_one_dimensional_shift_is_the_shift() -> None:
    # Every projection of a pure translation by c·1 moves all points by <theta, c·1>; SW_1 = E|<theta, c1>|.
    y = codes(256)
    theta = random_directions(D, 32, torch.Generator().manual_seed(0), torch.device("cpu"))
    shift = 0.5 * torch.ones(D)
    expected = (shift @ theta).abs().mean().item()
    assert sliced_wasserstein(y + shift, y, theta, p=1).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_agrees_with_a_direct_quadratic_reference(kernel) -> None:
    z, y = codes(12, shift=0.5).double(), codes(15, seed=3).double()
    c0 = base_scale(PRIOR)

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        d2 = float(((a - b) ** 2).sum())
        return sum((c0 * s) / (c0 * s + d2) if kernel == "imq" else np.exp(-d2 / (c0 * s)) for s in WAE_SCALES)

    n, m = len(z), len(y)
    kzz = sum(k(z[i], z[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kzy = sum(k(z[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    ours = mmd_unbiased(z, y, kernel, c0, WAE_SCALES).item()
    assert ours == pytest.approx(kzz + kyy - 2 * kzy, rel=1e-9)


def test_kernel_scale_follows_prior_variance_and_dimension() -> None:
    assert base_scale(NormalPrior(64, variance=2.0)) == pytest.approx(2 * 64 * 2.0)
    assert base_scale(NormalPrior(10, variance=[1.0] * 5 + [3.0] * 5)) == pytest.approx(2 * 10 * 2.0)


@pytest.mark.parametrize("name", list(ALL))
def test_float32_under_mixed_precision(name) -> None:
    z = codes(64, shift=0.5)
    ref = value(ALL[name], z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ALL[name](z.bfloat16(), PRIOR, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref, rel=0.05, abs=1e-3)  # only the bf16 rounding of z differs


def test_no_matching_is_exactly_zero() -> None:
    assert value(NoMatching(), codes(8, shift=5.0)) == 0.0


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="weight=-1 must be >= 0"):
        MMD(weight=-1)
    with pytest.raises(ValueError, match="kernel='cosine' must be one of 'imq', 'rbf'"):
        MMD(kernel="cosine")
    with pytest.raises(ValueError, match="n_projections=0"):
        SlicedWasserstein(n_projections=0)
    with pytest.raises(ValueError, match="do not match prior.dim=8"):
        MMD()(torch.zeros(4, 3), PRIOR)
    with pytest.raises(ValueError, match="at least 2 codes"):
        MMD()(torch.zeros(1, D), PRIOR)


# --- the small parts every distance goes through: checks, messages, by-hand values ---------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MMD(weight=-0.5), "MMD: weight=-0.5 must be >= 0."),
        (lambda: MMD(kernel="cosine"), "MMD: kernel='cosine' must be one of 'imq', 'rbf'."),
        (lambda: MMD(scales=[]), "MMD: scales=[] must have 1 to inf values."),
        (lambda: MMD(scales=[1.0, 0.0]), "MMD: scales=[1.0, 0.0] must be > 0."),
        (lambda: SlicedWasserstein(n_projections=0), "SlicedWasserstein: n_projections=0 must be >= 1."),
        (lambda: SlicedWasserstein(p=0.5), "SlicedWasserstein: p=0.5 must be >= 1."),
        (lambda: Moments(kurtosis_weight=-1), "Moments: kurtosis_weight=-1 must be >= 0."),
    ],
)
def test_constructor_messages_name_the_key_and_value(make, message: str) -> None:
    with pytest.raises(ValueError) as err:
        make()
    assert str(err.value) == message


def test_the_smallest_allowed_settings_are_accepted() -> None:
    assert MMD(weight=0).weight == 0.0 and MMD(scales=[0.5]).scales == (0.5,)
    swd = SlicedWasserstein(n_projections=1, p=1)
    assert (swd.n_projections, swd.p) == (1, 1.0)
    assert NoMatching().weight == 0.0 and Pointwise().weight == 1.0
    assert MMD().global_batch is True and MMD(global_batch=False).global_batch is False


def test_min_batch_of_each_distance() -> None:
    # the data module refuses evaluation splits smaller than this (a U-statistic or a variance needs pairs)
    assert {n: m.min_batch for n, m in ALL.items()} == {
        "mmd_imq": 2,
        "mmd_rbf": 2,
        "swd": 1,
        "pointwise": 1,
        "moments": 2,
    }
    assert NoMatching().min_batch == 1


def test_descriptions_show_every_setting() -> None:
    assert repr(MMD("rbf", scales=[1, 2], weight=3)) == "MMD(kernel=rbf, scales=(1.0, 2.0), weight=3.0)"
    assert repr(SlicedWasserstein(10, p=1, weight=0.5)) == "SlicedWasserstein(n_projections=10, p=1.0, weight=0.5)"
    assert repr(Pointwise(weight=2)) == "Pointwise(weight=2.0)"


def test_codes_of_the_wrong_shape_are_named() -> None:
    for z in (torch.zeros(4, 3), torch.zeros(4, D, 1), torch.zeros(D)):
        with pytest.raises(ValueError) as err:
            MMD()(z, PRIOR)
        assert str(err.value) == f"codes of shape {tuple(z.shape)} do not match prior.dim=8."


def test_estimators_refuse_too_few_samples_and_unequal_counts() -> None:
    z = codes(4)
    with pytest.raises(ValueError, match=r"needs at least 2 codes and 2 prior samples, got 4 and 1\."):
        mmd_unbiased(z, z[:1], "imq", 1.0, (1.0,))
    with pytest.raises(ValueError, match=r"got 1 and 4\."):
        mmd_unbiased(z[:1], z, "imq", 1.0, (1.0,))
    assert torch.isfinite(mmd_unbiased(z[:2], z[2:], "imq", 1.0, (1.0,)))  # two of each suffice
    with pytest.raises(ValueError, match=r"as many prior samples as codes, got 3 vs 4\."):
        sliced_wasserstein(z, z[:3], torch.eye(D))


def test_kernels_and_squared_distances_by_hand() -> None:
    from nag.model.matching import kernel_matrix, squared_distances

    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    d2 = squared_distances(a, a)
    assert torch.equal(d2, torch.tensor([[0.0, 25.0], [25.0, 0.0]]))
    assert squared_distances(a + 1e4, a + 1e4).min() >= 0  # rounding never gives a negative distance
    imq = kernel_matrix(d2, "imq", 5.0, (1.0, 2.0))
    assert imq[0, 1].item() == pytest.approx(5 / 30 + 10 / 35) and imq[0, 0].item() == pytest.approx(2.0)
    rbf = kernel_matrix(d2, "rbf", 5.0, (1.0, 2.0))
    assert rbf[0, 1].item() == pytest.approx(np.exp(-5) + np.exp(-2.5)) and rbf[1, 1].item() == pytest.approx(2.0)
    assert base_scale(NormalPrior(3, variance=[1.0, 2.0, 3.0])) == pytest.approx(2 * 3 * 2.0)


def test_sample_based_distances_use_the_prior_draws_of_the_generator() -> None:
    z = codes(16, shift=1.0)
    y = PRIOR.sample(16, generator=torch.Generator().manual_seed(7))
    assert value(Pointwise(), z, seed=7) == pytest.approx((z - y).pow(2).mean().item(), rel=1e-6)
    mmd = mmd_unbiased(z, y, "rbf", base_scale(PRIOR), (0.5, 2.0)).item()
    assert value(MMD("rbf", scales=(0.5, 2.0)), z, seed=7) == pytest.approx(mmd, rel=1e-6)
    # SWD: the prior draws first, then the directions, from the same generator
    g = torch.Generator().manual_seed(7)
    y = PRIOR.sample(16, generator=g)
    theta = random_directions(D, 5, g, z.device)
    for p in (1.0, 3.0):
        swd = sliced_wasserstein(z, y, theta, p).item()
        assert value(SlicedWasserstein(5, p=p), z, seed=7) == pytest.approx(swd, rel=1e-6)


def test_sliced_wasserstein_by_hand_on_two_directions() -> None:
    z = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    theta = torch.eye(2)  # the two axes: sorted x values (0, 2) vs (0, 1); y values (-1, 1) vs (0, 0)
    assert sliced_wasserstein(z, y, theta, 2.0).item() == pytest.approx((0 + 1 + 1 + 1) / 4)
    assert sliced_wasserstein(z, y, theta, 1.0).item() == pytest.approx((0 + 1 + 1 + 1) / 4)
    assert sliced_wasserstein(z * 2, y, theta, 3.0).item() == pytest.approx((0 + 27 + 8 + 8) / 4)


def test_random_directions_shape_and_generator() -> None:
    g = torch.Generator().manual_seed(3)
    theta = random_directions(5, 7, g, torch.device("cpu"))
    assert theta.shape == (5, 7)
    assert torch.allclose(theta.norm(dim=0), torch.ones(7))
    assert torch.equal(theta, random_directions(5, 7, torch.Generator().manual_seed(3), torch.device("cpu")))
    meta = random_directions(5, 7, torch.Generator().manual_seed(3), torch.device("meta"))
    assert meta.device.type == "meta"  # drawn on the generator's device, then moved


def test_batch_moments_by_hand() -> None:
    from nag.model.matching import batch_moments

    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [3.0, 0.0], [-3.0, 0.0]])
    mean, var, kurt = batch_moments(z)
    assert torch.equal(mean, torch.zeros(2))
    assert var.tolist() == pytest.approx([5.0, 0.0])
    assert kurt[0].item() == pytest.approx((1 + 1 + 81 + 81) / 4 / 25, rel=1e-5)
    assert kurt[1].item() == 0.0  # a constant dimension: eps keeps it finite


def test_defaults_of_each_distance() -> None:
    swd = SlicedWasserstein()
    assert (swd.n_projections, swd.p, swd.weight) == (50, 2.0, 1.0)
    mmd = MMD()
    assert (mmd.kernel, mmd.scales, mmd.weight) == ("imq", WAE_SCALES, 1.0)
    moments = Moments()
    assert (moments.term_weights, moments.weight) == ((1.0, 1.0, 0.1), 1.0)
    for cls in (MMD, SlicedWasserstein, Moments, Pointwise, NoMatching):
        assert cls().global_batch is True and cls(global_batch=False).global_batch is False, cls


def test_kurtosis_of_a_nearly_constant_dimension_stays_small_and_positive() -> None:
    from nag.model.matching import batch_moments

    z = torch.tensor([[0.01], [-0.01], [0.01], [-0.01]])  # variance 1e-4: eps (1e-6) dominates variance² (1e-8)
    kurt = batch_moments(z)[2].item()
    assert 0 < kurt == pytest.approx(1e-8 / (1e-8 + 1e-6), rel=1e-3)


def test_unseeded_directions_and_the_default_exponent() -> None:
    theta = random_directions(D, 4, None, torch.device("cpu"))  # no generator: the global stream, on the device
    assert theta.shape == (D, 4) and torch.allclose(theta.norm(dim=0), torch.ones(4))
    z, y = codes(8), codes(8, shift=1.0, seed=3)
    assert sliced_wasserstein(z, y, theta).item() == sliced_wasserstein(z, y, theta, p=2.0).item()


def test_the_mmd_distance_is_computed_with_its_own_kernel() -> None:
    """The IMQ kernel (C / (C + d²)) written out against the class: a class that fell back to the RBF kernel would
    give another value."""
    prior = NormalPrior(3)
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(6, 3, generator=g) + 0.5, torch.randn(5, 3, generator=g)
    c = [base_scale(prior) * s for s in (1.0,)]
    imq = lambda a, b: sum(ci / (ci + ((a[:, None] - b[None]) ** 2).sum(-1)) for ci in c)  # noqa: E731
    kzz, kyy, kzy = imq(z, z), imq(y, y), imq(z, y)
    expected = (kzz.sum() - kzz.diag().sum()) / 30 + (kyy.sum() - kyy.diag().sum()) / 20 - 2 * kzy.mean()
    got = MMD(kernel="imq", scales=(1.0,)).distance(z, y, prior, None)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert MMD(kernel="rbf", scales=(1.0,)).distance(z, y, prior, None).item() != pytest.approx(got.item(), rel=1e-3)

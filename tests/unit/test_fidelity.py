"""FID, KID, precision/recall and density/coverage on toy features with known answers; the reference cache; the
renaming of fid-helper's graph (no Inception run here: tests/integration/test_fidelity.py runs the network)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from nag.config.fid_flags import add_fid_arguments, fid_options
from nag.metrics import fidelity as fd
from nag.metrics.inception import N_CONV_BLOCKS, block_names
from tests.helpers import PicklePayload


def gaussian(n: int, d: int = 4, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_fid_of_two_gaussians_is_the_squared_mean_shift_plus_the_covariance_term() -> None:
    """FID(N(0, I), N(μ, I)) = |μ|²; FID(N(0, I), N(0, 4I)) = d·(1 + 4 − 2·2) = d."""
    a = fd.Reference.of(gaussian(20_000))
    assert fd.fid(a, fd.Reference.of(gaussian(20_000, shift=1.0, seed=1))) == pytest.approx(4.0, abs=0.05)
    assert fd.fid(a, fd.Reference.of(2 * gaussian(20_000, seed=2))) == pytest.approx(4.0, abs=0.25)  # 4 ± estimate
    assert fd.fid(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("n_a", "n_b", "d"), [(24, 24, 512), (30, 600, 512), (600, 30, 256), (40, 40, 40)])
def test_fid_below_d_images_equals_torch_fidelitys(n_a: int, n_b: int, d: int) -> None:
    """Where one side has no more images than dimensions, FID takes tr √(Σa Σb) in n × n space: the same number
    as torch-fidelity's ``sqrtm`` of the d × d product (skewed, non-Gaussian features, either side the smaller)."""
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    g = torch.Generator().manual_seed(n_a + n_b)
    a = fd.Reference.of(torch.rand(n_a, d, generator=g, dtype=torch.float64) ** 2)
    b = fd.Reference.of(1.2 * torch.rand(n_b, d, generator=g, dtype=torch.float64) + 0.1)
    assert fd._trace_sqrt_low_rank(a, b) is not None  # the n × n path is the one measured
    theirs = fid_statistics_to_metric({"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma}, verbose=False)
    assert fd.fid(a, b) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert fd.fid(b, a) == pytest.approx(fd.fid(a, b), rel=1e-7)
    assert fd.fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_zero_between_halves_of_one_distribution_and_positive_after_a_shift() -> None:
    x = gaussian(400)
    mean, std = fd.kid(x[:200], x[200:], subset_size=100)
    assert abs(mean) < 3 * std + 1e-3
    shifted, _ = fd.kid(x[:200], x[200:] + 1.0, subset_size=100)
    assert shifted > 10 * (abs(mean) + std)


def clusters(n: int, centre: float, seed: int) -> torch.Tensor:
    return gaussian(n, d=8, seed=seed) * 0.1 + centre


def test_prdc_of_identical_sets_is_one_everywhere() -> None:
    """Each point's k-NN ball (strict) holds itself and its k − 1 nearest: density is exactly 1."""
    x = clusters(60, 0.0, 0)
    assert fd.prdc(x, x) == pytest.approx({"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0})


def test_prdc_of_disjoint_sets_is_zero_everywhere() -> None:
    assert fd.prdc(clusters(60, 0.0, 0), clusters(60, 50.0, 1)) == {
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
    }


def test_prdc_of_one_mode_of_two_is_precise_but_misses_half() -> None:
    """Samples that are one of two real modes: every sample is realistic (precision 1), half the real images are
    not covered (recall and coverage 1/2)."""
    a, b = clusters(50, 0.0, 0), clusters(50, 50.0, 1)
    out = fd.prdc(torch.cat([a, b]), a)
    assert out["precision"] == 1.0 and out["recall"] == 0.5 and out["coverage"] == 0.5


def test_prdc_needs_more_images_than_neighbours() -> None:
    with pytest.raises(ValueError, match="k=3 needs more than 3 images per side"):
        fd.prdc(clusters(3, 0.0, 0), clusters(10, 0.0, 1))


def test_fidelity_reports_both_counts_and_the_bias_note() -> None:
    ref = fd.Reference.of(gaussian(64, seed=3))
    out = fd.fidelity(ref, gaussian(48, seed=4))
    assert out["n"] == 48 and out["n_reference"] == 64
    assert set(out) == {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "n", "n_reference"}
    assert fd.with_n(41.234, 500) == "41.23 at n=500 (biased high at n < 10,000)"
    assert fd.with_n(41.234, 10_000) == "41.23 at n=10,000"
    table = fd.fidelity_table({"samples": out})
    assert "| samples |" in table and "48 vs 64" in table and "n < 10,000 (here 48)" in table


def test_a_reference_round_trips_and_a_damaged_one_is_rebuilt(tmp_path: Path, caplog) -> None:
    ref = fd.Reference.of(gaussian(32, d=6).float())
    path = fd.reference_file(tmp_path, "synthetic-train-abc", "train", 32, "f00")
    assert path.name == "reference-synthetic-train-abc-train-n32-f00.npz"
    fd.save_reference(path, ref)
    back = fd.load_reference(path, 32, dim=6)
    assert back is not None and torch.equal(back.features, ref.features)
    assert np.array_equal(back.mu, ref.mu) and np.array_equal(back.sigma, ref.sigma)
    assert fd.load_reference(path, 31, dim=6) is None  # another n is another reference
    assert fd.load_reference(path, 32) is None  # self-consistent, but 6 features wide where FID reads 2048
    with caplog.at_level(logging.WARNING):
        path.write_bytes(path.read_bytes()[:100])  # truncated
        assert fd.load_reference(path, 32, dim=6) is None
        np.savez(path, features=np.array([object()], dtype=object), mu=np.zeros(1), sigma=np.zeros((1, 1)))
        assert fd.load_reference(path, 1) is None  # an object array is never unpickled
        bad = ref.features.numpy().copy()
        bad[0, 0] = np.nan
        np.savez(path, features=bad, mu=ref.mu, sigma=ref.sigma)
        assert fd.load_reference(path, 32, dim=6) is None
        np.savez(path, features=ref.features.numpy(), mu=ref.mu, sigma=ref.sigma, extra=np.zeros(1))
        assert fd.load_reference(path, 32, dim=6) is None  # not what nag writes
        np.savez_compressed(path, features=np.zeros((32, 6), np.float32), mu=np.zeros(6), sigma=np.zeros((6000, 1000)))
        assert fd.load_reference(path, 32, dim=6) is None  # 48 MB (past n=32's 35 MB) from a 50 KB file: refused
        wide = np.zeros((2082, 2082))  # shapes that agree, 59 KB past n=1's bound of 33 MB and 1 MiB of slack
        np.savez_compressed(path, features=np.zeros((1, 2082)), mu=np.zeros(2082), sigma=wide)
        assert fd.load_reference(path, 1, dim=2082) is None
    assert caplog.text.count("rebuilding the FID reference") == 8  # with the n=31 and the narrow one
    assert "would unpack past the size of a reference" in caplog.text
    link = tmp_path / "link.npz"
    fd.save_reference(path, ref)
    link.symlink_to(path)
    assert fd.load_reference(link, 32, dim=6) is None  # a planted link is not read


def test_a_reference_is_computed_once_and_then_read(tmp_path: Path) -> None:
    calls: list[int] = []

    def extractor(images: torch.Tensor) -> torch.Tensor:  # a stand-in feature map: the cache logic under test
        calls.append(len(images))
        return images.flatten(1).double().repeat(1, 171)[:, : fd.FEATURE_DIM]  # as wide as Inception's

    images = torch.rand(16, 3, 2, 2)
    path = tmp_path / "ref.npz"
    first = fd.reference(images, extractor, path)  # type: ignore[arg-type]
    second = fd.reference(images, extractor, path)  # type: ignore[arg-type]
    assert calls == [16] and torch.equal(first.features, second.features)
    path.write_bytes(b"not an npz")
    fd.reference(images, extractor, path)  # type: ignore[arg-type]
    assert calls == [16, 16]
    unsaved = fd.reference(images, extractor, None)  # type: ignore[arg-type]  # no cache: computed, not stored
    assert calls == [16, 16, 16] and torch.equal(unsaved.features, first.features)


def test_the_tf_graph_maps_onto_torch_fidelitys_94_blocks_one_to_one() -> None:
    names = block_names()
    assert len(names) == N_CONV_BLOCKS == len(set(names.values()))
    assert names["conv"] == "Conv2d_1a_3x3" and names["mixed_10.tower_2_conv"] == "Mixed_7c.branch_pool"
    assert names["mixed_3.conv"] == "Mixed_6a.branch3x3" and names["mixed_8.tower_1.conv_3"] == "Mixed_7a.branch7x7x3_4"
    assert names["mixed_4.tower_1.conv_4"] == "Mixed_6b.branch7x7dbl_5"


def test_the_default_n_is_the_fields_on_a_gpu_and_smaller_on_a_cpu() -> None:
    assert fd.default_n("cuda") == 10_000 and fd.default_n("cpu") == 1_000


@pytest.mark.parametrize(("argv", "expected"), [([], "auto"), (["--fid-n", "64"], 64)])
def test_fid_options_from_the_command_line(argv: list[str], expected, monkeypatch) -> None:
    p = argparse.ArgumentParser()
    add_fid_arguments(p)
    monkeypatch.setenv("NAG_FID", "true")
    opts = fid_options(p.parse_args(argv))
    assert opts["n_samples"] == expected and opts["enabled"] is True
    assert fid_options(p.parse_args([*argv, "--no-fid"]))["enabled"] is False
    monkeypatch.setenv("NAG_FID", "false")
    assert fid_options(p.parse_args(argv))["enabled"] is False


@pytest.mark.parametrize("bad", ["7", "many", "-5"])
def test_a_bad_fid_n_is_refused_by_name(bad: str) -> None:
    p = argparse.ArgumentParser()
    add_fid_arguments(p)
    with pytest.raises(SystemExit, match=f"--fid-n {bad}: give a whole number >= 8 or auto"):
        fid_options(p.parse_args(["--fid-n", bad]))


def test_fid_infinity_removes_the_small_n_bias_that_fid_keeps() -> None:
    """Samples of N(μ, I) in 16-D, |μ|² = 1, against 50,000 reference features of N(0, I): FID at n = 400 reads
    about 0.3 high (its 1/n bias); FID∞ (Chong & Forsyth's line through 15 subset sizes) lands near 1. One FID∞
    depends on its random subsets (here 1.06-1.34 over ten draws, for one set of samples): its median is the test."""
    ref = fd.Reference.of(gaussian(50_000, d=16))
    for sample in (1, 2):
        x = gaussian(400, d=16, shift=0.25, seed=sample)
        plain = fd.fid(ref, fd.Reference.of(x))
        draws = [fd.fid_infinity(ref, x, points=15, seed=seed) for seed in range(10)]
        inf = float(np.median([d["fid_inf"] for d in draws]))
        assert plain - 1 > 0.2 and abs(inf - 1) < 0.15 and inf < plain - 0.15, (plain, inf)
        assert all(d["fid_inf_slope"] > 0 and d["fid_inf_points"] == 15 for d in draws)  # bias falls as N grows


def test_fid_infinity_is_reported_only_when_asked_and_needs_a_line() -> None:
    ref, x = fd.Reference.of(gaussian(2_000, d=4)), gaussian(12, d=4, seed=1)
    assert "fid_inf" not in fd.fidelity(ref, x)
    out = fd.fidelity(ref, x, infinity_points=15)
    assert out["fid_inf_points"] == 11  # the distinct subset sizes 2..12 (n/10 is below 2)
    assert out["fid"] == fd.fidelity(ref, x)["fid"]  # FID itself unchanged
    with pytest.raises(ValueError, match="at least 2 points"):
        fd.fid_infinity(ref, x, points=1)
    table = fd.fidelity_table({"samples": out, "floor": out})
    assert "| FID ↓ | FID∞ ↓ |" in table and f"| {out['fid']:.2f} | {out['fid_inf']:.2f} |" in table
    assert "FID∞" not in fd.fidelity_table({"samples": fd.fidelity(ref, x)})


def test_fid_inf_option_from_the_command_line() -> None:
    p = argparse.ArgumentParser()
    add_fid_arguments(p)
    assert fid_options(p.parse_args([]))["infinity_points"] == 0
    assert fid_options(p.parse_args(["--fid-inf", "15"]))["infinity_points"] == 15
    with pytest.raises(SystemExit, match="--fid-inf 1: give 0"):
        fid_options(p.parse_args(["--fid-inf", "1"]))


def test_batched_reports_each_batch_once_and_keeps_the_order() -> None:
    """What the Inception features' progress bar counts: every image once, batch by batch."""
    from nag.model.inference import batched

    seen: list[int] = []
    x = torch.arange(10.0).view(10, 1)
    out = batched(lambda b: 2 * b, x, "cpu", batch_size=4, on_batch=seen.append)
    assert seen == [4, 4, 2] and torch.equal(out, 2 * x)


@pytest.mark.parametrize(
    ("n", "d", "read"),
    [
        (51, 2104, True),  # 384 bytes under the bound of n = 51 (8 (4096 n + 2048 · 2049) bytes + 1 MiB)
        (437, 2264, True),  # exactly at the bound
        (66, 2111, False),  # 368 bytes past it
    ],
)
def test_a_reference_is_bounded_by_its_unpacked_size_to_the_byte(tmp_path: Path, n: int, d: int, read: bool) -> None:
    """Shapes that agree (n features of d, compressed zeros: a small file) read or refused by the bound alone."""
    path = tmp_path / "ref.npz"
    np.savez_compressed(path, features=np.zeros((n, d)), mu=np.zeros(d), sigma=np.zeros((d, d)))
    got = fd.load_reference(path, n, dim=d)
    assert (got is not None) is read
    if read:
        assert got.features.dtype == torch.float32 and got.features.shape == (n, d)
        assert got.mu.dtype == got.sigma.dtype == np.float64


def test_a_reference_holding_a_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "ref.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = PicklePayload(marker)
    np.savez(path, features=payload, mu=np.zeros(1), sigma=np.zeros((1, 1)))
    assert fd.load_reference(path, 1, dim=1) is None and not marker.exists()


def test_the_fidelity_table_is_one_row_per_set_with_kid_in_thousandths_and_n_beside_it() -> None:
    row = {"fid": 41.2345, "kid": 0.012345, "kid_std": 0.0345, "precision": 0.5, "recall": 0.25}
    row |= {"density": 1.125, "coverage": 0.75, "n": 9_999, "n_reference": 10_000}
    lines = fd.fidelity_table({"samples": row}).splitlines()
    assert lines[:3] == [
        "| images | FID ↓ | KID ×10³ ↓ | precision ↑ | recall ↑ | density | coverage ↑ | n (images vs real) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| samples | 41.23 | 12.35 ± 34.50 | 0.500 | 0.250 | 1.125 | 0.750 | 9,999 vs 10,000 |",
    ]
    assert "here 9,999" in lines[-1]
    at_10k = fd.fidelity_table({"samples": {**row, "n": 10_000}, "floor": {**row, "n": 12_000}}).splitlines()
    assert len(at_10k) == 4 and "biased" not in "".join(at_10k)  # no note at n ≥ 10,000
    with_inf = fd.fidelity_table({"samples": {**row, "fid_inf": 39.5}}).splitlines()
    assert with_inf[1] == "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    assert with_inf[2].startswith("| samples | 41.23 | 39.50 | 12.35 ± 34.50 |")


def test_fidelity_draws_its_kid_subsets_and_fid_infinity_sizes_from_one_seed() -> None:
    ref, x = fd.Reference.of(gaussian(300, d=4)), gaussian(40, d=4, seed=1)
    default = fd.fidelity(ref, x, infinity_points=15)
    assert default == fd.fidelity(ref, x, seed=0, infinity_points=15)
    other = fd.fidelity(ref, x, seed=5, infinity_points=15)
    assert other["kid"] != default["kid"] and other["fid_inf"] != default["fid_inf"]
    assert other["fid"] == default["fid"]  # FID itself draws nothing
    assert fd.fid_infinity(ref, x) == fd.fid_infinity(ref, x, points=15, seed=0)
    two = fd.fid_infinity(ref, x, points=2)  # the fewest points a line needs
    assert two["fid_inf_points"] == 2


@pytest.mark.parametrize(("n_real", "n_fake", "size"), [(2_100, 2_300, 1_000), (300, 500, 150), (5, 9, 2)])
def test_kid_uses_subsets_of_a_thousand_or_half_the_smaller_set_as_torch_fidelity_computes_it(
    n_real: int, n_fake: int, size: int
) -> None:
    from torch_fidelity.metric_kid import kid_features_to_metric

    real, fake = gaussian(n_real, d=4, seed=2).float(), (gaussian(n_fake, d=4, seed=3) * 1.2).float()
    expected = kid_features_to_metric(real.double(), fake.double(), kid_subset_size=size, rng_seed=0, verbose=False)
    got = fd.kid(real, fake)
    assert got == (expected["kernel_inception_distance_mean"], expected["kernel_inception_distance_std"])


def test_fid_infinity_needs_two_subset_sizes_and_three_images_give_them() -> None:
    ref = fd.Reference.of(gaussian(200, d=3))
    assert fd.fid_infinity(ref, gaussian(3, d=3, seed=1))["fid_inf_points"] == 2  # subsets of 2 and 3 images
    with pytest.raises(ValueError, match="at least 3 generated images, not 2"):
        fd.fid_infinity(ref, gaussian(2, d=3, seed=1))

"""``findings.assess`` on constructed metrics: every verdict flips exactly at its stated threshold."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nag.analysis.findings import assess, feature_ratios


def supported() -> dict[str, Any]:
    """Metrics under which all six findings hold, each near (not at) its threshold."""
    return {
        "matched0_reconstruction": {
            "by_attribute": {
                "Eyeglasses": {"frequency": 0.05, "ratio": 1.5},  # rare
                "No_Beard": {"frequency": 0.95, "present": 1.0, "absent": 1.4, "ratio": 1.0},  # → Beard, rare
                "Smiling": {"frequency": 0.50, "ratio": 1.0},  # common
                "Bangs": {"frequency": 0.15, "ratio": 9.0},  # neither rare nor common: ignored
            },
            "interpolation": {"step_ratio": 1.5, "worst_step_ratio": 2.5},
            "reconstruction": {"swd_mean": 50.0},
        },
        "matched0_N0": {
            "samples": {"swd_mean": 60.0, "diversity": 0.2},
            "probes": {"+100": {"diversity": 0.01, "swd_mean": 130.0}, "-100": {"diversity": 0.15, "swd_mean": 200.0}},
        },
        "real_baseline": {"swd_mean": 15.0, "diversity": 0.3},
        "plain_N0": {"samples": {"swd_mean": 80.0, "diversity": 0.2}},
        "plain_reconstruction": {"latent": {"code_mean": 0.1, "code_variance": 3.0, "mmd": 0.2}},
        "plain_N-3": {"samples": {"swd_mean": 100.0, "diversity": 0.05}},
        "matched-3_N-3": {"samples": {"swd_mean": 60.0, "diversity": 0.2}},
    }


def verdicts(m: dict[str, Any]) -> list[bool]:
    return [f.supported for f in assess(m)]


def with_value(path: str, value: float) -> dict[str, Any]:
    m = copy.deepcopy(supported())
    *keys, last = path.split("/")
    node = m
    for k in keys:
        node = node[k]
    node[last] = value
    return m


def test_all_six_hold_on_the_constructed_metrics() -> None:
    findings = assess(supported())
    assert [f.supported for f in findings] == [True] * 6
    assert "Eyeglasses ×1.50" in findings[0].evidence and "Beard ×1.40" in findings[0].evidence
    assert "Bangs" not in findings[0].evidence


def test_no_x_attributes_are_inverted_into_feature_x() -> None:
    ratios = feature_ratios(supported()["matched0_reconstruction"]["by_attribute"])
    assert ratios["Beard"] == pytest.approx((0.05, 1.4))  # frequency 1 − 0.95, error with / without = 1.4 / 1.0
    assert "No_Beard" not in ratios


# (finding index, metric path, value just inside the threshold, value just outside)
THRESHOLDS = [
    # 1: rare mean > common mean and > 1.1 (rare mean is (1.5 + 1.4) / 2 = 1.45)
    (0, "matched0_reconstruction/by_attribute/Smiling/ratio", 1.44, 1.46),
    (1, "matched0_reconstruction/interpolation/step_ratio", 2.0, 2.01),  # 2: average step ratio ≤ 2
    (2, "matched0_N0/samples/swd_mean", 100.0, 100.1),  # 3: sample SWD ≤ 2 × reconstruction SWD (50)
    (2, "matched0_N0/samples/diversity", 0.15, 0.149),  # 3: diversity ≥ half the real one (0.3)
    (3, "matched0_N0/probes/-100/swd_mean", 120.1, 120.0),  # 4: probe SWD > 2 × samples' (diversity 0.15 not < 0.1)
    (4, "plain_N0/samples/swd_mean", 90.0, 90.1),  # 5: plain ≤ 1.5 × matched (60)
    (5, "plain_N-3/samples/swd_mean", 90.0, 89.9),  # 6: plain ≥ 1.5 × matched (60)
]


@pytest.mark.parametrize(("index", "path", "inside", "outside"), THRESHOLDS)
def test_each_verdict_flips_at_its_threshold(index: int, path: str, inside: float, outside: float) -> None:
    assert verdicts(with_value(path, inside))[index] is True
    after = verdicts(with_value(path, outside))
    assert after[index] is False


def test_rare_features_need_an_error_ratio_above_1_1() -> None:
    m = supported()
    for name in ("Eyeglasses", "No_Beard"):
        entry = m["matched0_reconstruction"]["by_attribute"][name]
        entry["ratio"], entry["absent"] = 1.09, 1.09
    m["matched0_reconstruction"]["by_attribute"]["Smiling"]["ratio"] = 0.9  # rare still above common
    assert verdicts(m)[0] is False


def test_a_probe_collapses_by_diversity_or_by_swd_and_every_probe_must() -> None:
    m = with_value("matched0_N0/probes/-100/diversity", 0.099)  # now collapsed by diversity as well
    m["matched0_N0"]["probes"]["-100"]["swd_mean"] = 10.0  # ... and no longer by SWD: still collapsed
    assert verdicts(m)[3] is True
    m["matched0_N0"]["probes"]["+100"] = {"diversity": 0.2, "swd_mean": 60.0}  # one probe that looks fine
    assert verdicts(m)[3] is False
    m["matched0_N0"]["probes"] = {}
    assert verdicts(m)[3] is False  # no probe measured is no evidence


def test_without_rare_or_common_features_finding_1_is_not_supported() -> None:
    m = supported()
    m["matched0_reconstruction"]["by_attribute"] = {"Smiling": {"frequency": 0.5, "ratio": 1.0}}
    finding = assess(m)[0]
    assert finding.supported is False and "rare (< 10% of faces): none; mean ×nan." in finding.evidence


def test_rare_and_common_bounds_are_half_open() -> None:
    """Rare is below 10 % (a feature at exactly 10 % is not rare); common is from 20 % on."""
    m = supported()
    features = m["matched0_reconstruction"]["by_attribute"]
    features["Eyeglasses"]["frequency"] = 0.10  # no longer rare: Beard (×1.4) alone is
    features["Smiling"]["frequency"] = 0.20  # still common
    finding = assess(m)[0]
    assert "Eyeglasses" not in finding.evidence and "Beard ×1.40; mean ×1.40" in finding.evidence
    assert "Common (≥ 20%): mean ×1.00" in finding.evidence


def test_rare_features_are_listed_worst_first() -> None:
    assert "Eyeglasses ×1.50, Beard ×1.40;" in assess(supported())[0].evidence


def test_the_six_claims_are_the_reports() -> None:
    assert [f.claim for f in assess(supported())] == [
        "Reconstructions keep common features (skin tone, hair) and lose rare ones (sunglasses, beard).",
        "Latent interpolation in 11 steps changes the face gradually.",
        "The model matched to N(0, 2) generates faces from samples of N(0, 2), with variety.",
        "Samples from far-away means (+100 / −100) are near-identical or broken faces.",
        "A plain autoencoder sampled from N(0, 2) looked similar (its codes sat near 0).",
        "With the prior at N(−3, 2) the plain autoencoder fails where the matched one succeeds.",
    ]


def test_the_attribute_classifier_adds_its_reading_to_findings_1_and_3() -> None:
    m = supported()
    m["matched0_attributes"] = {
        "accuracy_mean": 0.9,
        "frequency_gap": 0.03,
        "frequency": {
            "Eyeglasses": {"label": 0.05, "samples": 0.01, "real": 0.06},
            "Sunglasses": {"label": 0.02, "samples": 0.03, "real": 0.025},
            "Smiling": {"label": 0.5, "samples": 0.45, "real": 0.5},
            "Young": {"label": 0.7, "samples": 0.6, "real": 0.7},
        },
        "reconstruction_kept": {"Eyeglasses": 0.2, "Sunglasses": 0.6, "Smiling": 0.9, "Young": 0.7},
    }
    first, _, third, *_ = assess(m)
    assert "held-out accuracy 90%" in first.evidence
    assert "for Eyeglasses 20%, Sunglasses 60%; common features: 80% on average." in first.evidence  # least kept 1st
    assert "mean distance of 3.0%" in third.evidence
    assert "rare ones: Sunglasses 3.0% (real 2.5%), Eyeglasses 1.0% (real 6.0%)." in third.evidence  # rarest 1st
    assert [f.supported for f in assess(m)] == [True] * 6  # the classifier informs, it does not judge


def test_the_evidence_reads_in_full() -> None:
    """What a reader of the report sees for each finding: the numbers, formatted, and the criterion."""
    m = supported()
    m["matched0_reconstruction"]["by_attribute"]["No_Beard"].update(present=0.5, absent=0.7)  # ×1.40 either way
    evidence = [f.evidence for f in assess(m)]
    assert evidence == [
        "Reconstruction error with / without a feature — rare (< 10% of faces): Eyeglasses ×1.50, Beard ×1.40; "
        "mean ×1.45. Common (≥ 20%): mean ×1.00. Criterion: rare mean > common mean and > 1.1.",
        "Largest step / mean step along each path: 1.50 on average, 2.50 at worst (1 = perfectly even; a sudden "
        "switch would be ≈ 10). Criterion: average ≤ 2.",
        "Sample SWD 60.0 vs its reconstructions' 50.0 (real vs real 15.0); diversity 0.200 vs real 0.300. "
        "Criterion: sample SWD ≤ 2 × reconstruction SWD and diversity ≥ half the real one.",
        "mean +100: diversity 0.010, SWD 130.0; mean -100: diversity 0.150, SWD 200.0 — vs N(0, 2) samples: "
        "diversity 0.200, SWD 60.0. Criterion: for every probe, diversity < half or SWD > twice that of the prior "
        "samples.",
        "Sample SWD plain 80.0 vs matched 60.0; diversity 0.200 vs 0.200. Plain codes: mean +0.10, variance 3.00, "
        "MMD² to N(0, 2) 0.200. Criterion: plain SWD ≤ 1.5 × matched SWD.",
        "Sample SWD plain 100.0 vs matched to N(−3, 2) 60.0; diversity 0.050 vs 0.200. Criterion: plain SWD ≥ "
        "1.5 × matched SWD.",
    ]


def test_finding_1_needs_strictly_more_than_the_common_mean_and_than_1_1() -> None:
    def verdict(rare: float, common: float) -> bool:
        m = supported()
        m["matched0_reconstruction"]["by_attribute"] = {"Eyeglasses": {"frequency": 0.05, "ratio": rare},
                                                        "Smiling": {"frequency": 0.5, "ratio": common}}  # fmt: skip
        return assess(m)[0].supported

    assert verdict(1.1, 1.0) is False and verdict(1.11, 1.0) is True  # rare mean exactly 1.1 is not above it
    assert verdict(1.5, 1.5) is False and verdict(1.5, 1.49) is True  # nor is a rare mean equal to the common one


def test_a_probe_at_exactly_half_the_diversity_has_not_collapsed() -> None:
    m = supported()
    m["matched0_N0"]["probes"] = {"+100": {"diversity": 0.1, "swd_mean": 60.0}}  # half of 0.2, SWD the same
    assert verdicts(m)[3] is False
    m["matched0_N0"]["probes"]["+100"]["diversity"] = 0.0999
    assert verdicts(m)[3] is True


def test_the_classifier_reading_uses_the_half_open_bounds_and_at_most_four_rare_features() -> None:
    m = supported()
    labels = {"A": 0.01, "B": 0.02, "C": 0.03, "D": 0.04, "E": 0.05, "Edge": 0.10, "Common": 0.20}
    m["matched0_attributes"] = {
        "accuracy_mean": 0.9,
        "frequency_gap": 0.03,
        "frequency": {n: {"label": f, "samples": f, "real": f} for n, f in labels.items()},
        "reconstruction_kept": {"A": 0.5, "B": 0.4, "C": 0.3, "D": 0.2, "E": 0.1, "Edge": 0.0, "Common": 0.8},
    }
    first, _, third, *_ = assess(m)
    # 10 % is not rare (Edge is left out), 20 % is common (its 80 % is the common mean), four listed at most
    assert first.evidence.endswith("for E 10%, D 20%, C 30%, B 40%; common features: 80% on average.")
    assert third.evidence.endswith("rare ones: A 1.0% (real 1.0%), B 2.0% (real 2.0%), C 3.0% (real 3.0%), "
                                   "D 4.0% (real 4.0%).")  # fmt: skip
    for name in "BCDE":  # with one rare feature left, the one at exactly 10 % is still not listed
        del m["matched0_attributes"]["frequency"][name], m["matched0_attributes"]["reconstruction_kept"][name]
    first, _, third, *_ = assess(m)
    assert third.evidence.endswith("rare ones: A 1.0% (real 1.0%).") and "for A 50%; common" in first.evidence


def test_no_x_ratio_is_error_without_over_error_with() -> None:
    ratios = feature_ratios({"No_Beard": {"frequency": 0.9, "present": 0.5, "absent": 2.0, "ratio": 0.25}})
    assert ratios == {"Beard": (pytest.approx(0.1), 4.0)}

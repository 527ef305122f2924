"""``findings.assess`` on constructed measures: every verdict flips exactly at its stated threshold, each is judged on
its own numbers (which its evidence shows); ``report_measures`` takes each from its evaluation."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict
from typing import Any

import pytest

from nag.analysis.findings import Finding, assess
from nag.analysis.measures import (
    AttributeShare,
    ClassifierReading,
    FeatureError,
    ReportMeasures,
    SampleStats,
    feature_ratios,
    measures_from_json,
    report_measures,
)


def details() -> dict[str, Any]:
    """Evaluations (the nested dicts ``evaluate_runs`` gathers) under which all six findings hold, each near (not
    at) its threshold."""
    return {
        "n_test": 32,
        "matched0_reconstruction": {
            "by_attribute": {
                "Eyeglasses": {"frequency": 0.05, "present": 1.5, "absent": 1.0, "ratio": 1.5},  # rare
                "No_Beard": {"frequency": 0.95, "present": 1.0, "absent": 1.4, "ratio": 1.0},  # → Beard, rare
                "Smiling": {"frequency": 0.50, "present": 1.0, "absent": 1.0, "ratio": 1.0},  # common
                "Bangs": {"frequency": 0.15, "present": 9.0, "absent": 1.0, "ratio": 9.0},  # neither: ignored
            },
            "interpolation": {"step_ratio": 1.5, "worst_step_ratio": 2.5, "mean_step": 0.1},
            "reconstruction": {"swd_mean": 50.0, "mse": 0.01},
        },
        "matched0_N0": {
            "samples": {"swd_mean": 60.0, "diversity": 0.2},
            "probes": {"+100": {"diversity": 0.01, "swd_mean": 130.0}, "-100": {"diversity": 0.15, "swd_mean": 200.0}},
        },
        "real_baseline": {"swd_mean": 15.0, "diversity": 0.3},
        "plain_N0": {"samples": {"swd_mean": 80.0, "diversity": 0.2}},
        "plain_reconstruction": {"latent": {"code_mean": 0.1, "code_variance": 3.0, "code_kurtosis": 0.5, "mmd": 0.2}},
        "plain_latent_vs_N-3": {"mmd": 1.7},
        "plain_N-3": {"samples": {"swd_mean": 100.0, "diversity": 0.05}},
        "matched-3_N-3": {"samples": {"swd_mean": 60.0, "diversity": 0.2}},
        "plain_gmm": {"samples": {"swd_mean": 70.0, "diversity": 0.25}},
    }


def supported() -> ReportMeasures:
    return report_measures(details())


def verdicts(m: ReportMeasures) -> list[bool]:
    return [f.supported for f in assess(m)]


def group(finding: Finding, prefix: str) -> dict[str, float]:
    """One listed group of a finding's numbers (``prefix/<name>``), in the order the evidence lists it."""
    return {k.split("/", 1)[1]: v for k, v in finding.numbers.items() if k.startswith(prefix + "/")}


def rare(finding: Finding) -> dict[str, float]:
    return group(finding, "rare")


def with_value(path: str, value: float) -> ReportMeasures:
    """The supported measures with one field (``a/b/c``: attributes, or keys of a dict field) set to ``value``."""
    m = copy.deepcopy(supported())
    *keys, last = path.split("/")
    node: Any = m
    for k in keys:
        node = node[k] if isinstance(node, dict) else getattr(node, k)
    if isinstance(node, dict):
        node[last] = value
    else:
        setattr(node, last, value)
    return m


def test_all_six_hold_on_the_constructed_metrics() -> None:
    findings = assess(supported())
    assert [f.supported for f in findings] == [True] * 6
    assert rare(findings[0]) == {"Eyeglasses": 1.5, "Beard": pytest.approx(1.4)}  # Bangs (15 %) is neither


def test_no_x_attributes_are_inverted_into_feature_x() -> None:
    ratios = supported().features
    assert ratios["Beard"] == FeatureError(pytest.approx(0.05), pytest.approx(1.4))  # 1 − 0.95; with / without
    assert "No_Beard" not in ratios


def test_the_measures_are_the_evaluations_the_findings_are_about() -> None:
    """Which evaluation each record is taken from (the connecting code: a swap here judges the wrong run)."""
    d = details()
    for i, key in enumerate(["real_baseline", "matched0_N0", "plain_N0", "plain_N-3", "matched-3_N-3", "plain_gmm"]):
        node = d[key] if key == "real_baseline" else d[key]["samples"]
        node["swd_mean"], node["diversity"] = 1000.0 + i, 0.5 + i
    d["matched0_reconstruction"]["reconstruction"]["swd_mean"] = 999.0
    m = report_measures(d)
    stats = [m.real, m.matched_samples, m.plain_samples, m.plain_at_minus3, m.matched_at_minus3, m.plain_gmm]
    assert [(s.swd_mean, s.diversity) for s in stats] == [(1000.0 + i, 0.5 + i) for i in range(6)]
    assert m.matched_reconstruction_swd == 999.0 and m.n_test == 32 and m.plain_mmd_to_minus3 == 1.7
    assert m.probes["-100"].swd_mean == 200.0 and m.probes["+100"].diversity == 0.01
    assert (m.plain_codes.code_mean, m.plain_codes.code_kurtosis, m.plain_codes.mmd) == (0.1, 0.5, 0.2)
    assert (m.interpolation.step_ratio, m.interpolation.worst_step_ratio) == (1.5, 2.5)
    assert m.classifier is None


def test_the_measures_round_trip_through_json_and_a_damaged_file_is_named() -> None:
    m = supported()
    m.classifier = ClassifierReading(0.9, 0.03, {"Hat": AttributeShare(0.05, 0.06, 0.01)}, {"Hat": 0.2})
    data = json.loads(json.dumps(asdict(m)))
    assert measures_from_json(data) == m
    data["plain_codes"]["mmd"] = "0.2"
    with pytest.raises(ValueError, match=r"measures\.plain_codes\.mmd: expected float, got '0.2'"):
        measures_from_json(data)
    data["plain_codes"]["mmd"], data["extra"] = 0.2, 1
    with pytest.raises(ValueError, match=r"measures: unknown field\(s\) extra"):
        measures_from_json(data)
    del data["extra"], data["probes"]
    with pytest.raises(ValueError, match=r"measures: missing field\(s\) probes"):
        measures_from_json(data)
    data["probes"] = {"+100": {"swd_mean": True, "diversity": 0.1}}
    with pytest.raises(ValueError, match=r"measures\.probes\.\+100\.swd_mean: expected float"):
        measures_from_json(data)
    data["probes"] = {"+100": {"swd_mean": json.loads("Infinity"), "diversity": 0.1}}  # Python's json reads it
    with pytest.raises(ValueError, match=r"measures\.probes\.\+100\.swd_mean: expected float, got inf"):
        measures_from_json(data)
    data["probes"] = {"+100": {"swd_mean": None, "diversity": 0.1}}  # JSON's NaN
    assert math.isnan(measures_from_json(data).probes["+100"].swd_mean)
    for bad, message in [
        ("32", r"measures\.n_test: expected int, got '32'"),  # an int field takes whole numbers only
        (True, r"measures\.n_test: expected int, got True"),
    ]:
        with pytest.raises(ValueError, match=message):
            measures_from_json({**data, "n_test": bad})
    with pytest.raises(ValueError, match=r"^measures: unknown field\(s\) a, b, c, d, e$"):
        measures_from_json({**data, **{k: 1 for k in "abcdef"}})  # five named at most, comma-separated
    with pytest.raises(ValueError, match=r"^measures: missing field\(s\) n_test, plain_gmm$"):
        measures_from_json({k: v for k, v in data.items() if k not in ("n_test", "plain_gmm")})
    with pytest.raises(ValueError, match=r"^measures\.classifier: expected a mapping, got int$"):
        measures_from_json({**data, "classifier": 3})
    assert measures_from_json({**data, "classifier": None}).classifier is None
    assert measures_from_json({k: v for k, v in data.items() if k != "classifier"}).classifier is None


# (finding index, measure path, value just inside the threshold, value just outside)
THRESHOLDS = [
    # 1: rare mean > common mean and > 1.1 (rare mean is (1.5 + 1.4) / 2 = 1.45)
    (0, "features/Smiling/ratio", 1.44, 1.46),
    (1, "interpolation/step_ratio", 2.0, 2.01),  # 2: average step ratio ≤ 2
    (2, "matched_samples/swd_mean", 100.0, 100.1),  # 3: sample SWD ≤ 2 × reconstruction SWD (50)
    (2, "matched_samples/diversity", 0.15, 0.149),  # 3: diversity ≥ half the real one (0.3)
    (3, "probes/-100/swd_mean", 120.1, 120.0),  # 4: probe SWD > 2 × samples' (diversity 0.15 not < 0.1)
    (4, "plain_samples/swd_mean", 90.0, 90.1),  # 5: plain ≤ 1.5 × matched (60)
    (5, "plain_at_minus3/swd_mean", 90.0, 89.9),  # 6: plain ≥ 1.5 × matched (60)
]


@pytest.mark.parametrize(("index", "path", "inside", "outside"), THRESHOLDS)
def test_each_verdict_flips_at_its_threshold(index: int, path: str, inside: float, outside: float) -> None:
    assert verdicts(with_value(path, inside))[index] is True
    after = verdicts(with_value(path, outside))
    assert after[index] is False


def test_rare_features_need_an_error_ratio_above_1_1() -> None:
    m = supported()
    m.features["Eyeglasses"].ratio = m.features["Beard"].ratio = 1.09
    m.features["Smiling"].ratio = 0.9  # rare still above common
    assert verdicts(m)[0] is False


def test_a_probe_collapses_by_diversity_or_by_swd_and_every_probe_must() -> None:
    m = with_value("probes/-100/diversity", 0.099)  # now collapsed by diversity as well
    m.probes["-100"].swd_mean = 10.0  # ... and no longer by SWD: still collapsed
    assert verdicts(m)[3] is True
    m.probes["+100"] = SampleStats(swd_mean=60.0, diversity=0.2)  # one probe that looks fine
    assert verdicts(m)[3] is False
    m.probes = {}
    assert verdicts(m)[3] is False  # no probe measured is no evidence


def test_without_rare_or_common_features_finding_1_is_not_supported() -> None:
    m = supported()
    m.features = {"Smiling": FeatureError(0.5, 1.0)}
    finding = assess(m)[0]
    assert finding.supported is False and rare(finding) == {} and math.isnan(finding.numbers["rare_mean"])
    assert "rare (< 10% of faces): none;" in finding.evidence


def test_rare_and_common_bounds_are_half_open() -> None:
    """Rare is below 10 % (a feature at exactly 10 % is not rare); common is from 20 % on."""
    m = supported()
    m.features["Eyeglasses"].frequency = 0.10  # no longer rare: Beard (×1.4) alone is
    m.features["Smiling"].frequency = 0.20  # still common
    finding = assess(m)[0]
    assert rare(finding) == {"Beard": pytest.approx(1.4)} and finding.numbers["rare_mean"] == pytest.approx(1.4)
    assert finding.numbers["common_mean"] == 1.0  # Smiling (1.0) alone: Eyeglasses at 10 % is not common either


def test_rare_features_are_listed_worst_first() -> None:
    m = supported()
    assert list(rare(assess(m)[0])) == ["Eyeglasses", "Beard"]  # ×1.5, ×1.4
    m.features["Beard"].ratio = 1.6
    assert list(rare(assess(m)[0])) == ["Beard", "Eyeglasses"]


def test_each_claim_is_about_its_own_finding() -> None:
    """The six claims, in the report's order: what each is about, not its wording."""
    subjects = [
        ("rare", "common"),
        ("interpolation",),
        ("N(0, 2)", "matched"),
        ("+100", "−100"),
        ("plain", "N(0, 2)"),
        ("plain", "N(−3, 2)"),
    ]
    claims = [f.claim for f in assess(supported())]
    assert len(set(claims)) == 6
    for claim, words in zip(claims, subjects, strict=True):
        assert all(w.lower() in claim.lower() for w in words), (claim, words)


def _classifier(
    labels: dict[str, float],
    kept: dict[str, float],
    samples: dict[str, float] | None = None,
    real: dict[str, float] | None = None,
) -> ClassifierReading:
    samples, real = samples or labels, real or labels
    shares = {n: AttributeShare(label=f, real=real[n], samples=samples[n]) for n, f in labels.items()}
    return ClassifierReading(accuracy_mean=0.9, frequency_gap=0.03, frequency=shares, reconstruction_kept=kept)


def test_the_attribute_classifier_adds_its_reading_to_findings_1_and_3() -> None:
    m = supported()
    m.classifier = _classifier(
        {"Eyeglasses": 0.05, "Sunglasses": 0.02, "Smiling": 0.5, "Young": 0.7},
        kept={"Eyeglasses": 0.2, "Sunglasses": 0.6, "Smiling": 0.9, "Young": 0.7},
        samples={"Eyeglasses": 0.01, "Sunglasses": 0.03, "Smiling": 0.45, "Young": 0.6},
        real={"Eyeglasses": 0.06, "Sunglasses": 0.025, "Smiling": 0.5, "Young": 0.7},
    )
    first, _, third, *_ = assess(m)
    assert first.numbers["classifier/accuracy"] == 0.9
    assert list(group(first, "kept").items()) == [("Eyeglasses", 0.2), ("Sunglasses", 0.6)]  # least kept first
    assert first.numbers["kept_common_mean"] == pytest.approx(0.8)  # (0.9 + 0.7) / 2
    assert third.numbers["frequency_gap"] == 0.03
    assert list(group(third, "samples").items()) == [("Sunglasses", 0.03), ("Eyeglasses", 0.01)]  # rarest first
    assert group(third, "real") == {"Sunglasses": 0.025, "Eyeglasses": 0.06}
    assert "Eyeglasses 20%, Sunglasses 60%;" in first.evidence and "(real 2.5%), Eyeglasses" in third.evidence
    plain_first, _, plain_third, *_ = assess(supported())  # without a classifier: nothing after the criterion
    assert plain_first.evidence.endswith("> 1.1.") and plain_third.evidence.endswith("half the real one.")
    assert [f.supported for f in assess(m)] == [True] * 6  # the classifier informs, it does not judge


# The numbers each finding was judged on, by name (what metrics.json keeps), from the measures of details().
NUMBERS = [
    {"rare/Eyeglasses": 1.5, "rare/Beard": 1.4, "rare_mean": 1.45, "common_mean": 1.0, "threshold": 1.1},
    {"step_ratio": 1.5, "worst_step_ratio": 2.5, "threshold": 2.0},
    {"sample_swd": 60.0, "reconstruction_swd": 50.0, "real_swd": 15.0, "sample_diversity": 0.2, "real_diversity": 0.3},
    {
        "sample_diversity": 0.2,
        "sample_swd": 60.0,
        "probe+100/diversity": 0.01,
        "probe+100/swd": 130.0,
        "probe-100/diversity": 0.15,
        "probe-100/swd": 200.0,
    },
    {
        **{"plain_swd": 80.0, "matched_swd": 60.0, "plain_diversity": 0.2, "matched_diversity": 0.2, "ratio": 1.5},
        **{"code_mean": 0.1, "code_variance": 3.0, "mmd": 0.2},
    },
    {"plain_swd": 100.0, "matched_swd": 60.0, "plain_diversity": 0.05, "matched_diversity": 0.2, "ratio": 1.5},
]


@pytest.mark.parametrize(("index", "expected"), enumerate(NUMBERS))
def test_each_finding_is_judged_on_its_own_numbers(index: int, expected: dict[str, float]) -> None:
    assert assess(supported())[index].numbers == pytest.approx(expected)


def _shown(value: float) -> set[str]:
    """The ways the evidence may print ``value``."""
    return {f"{value:{spec}}" for spec in (".0%", ".1%", ".1f", ".2f", ".3f", "+.2f", "g")}


@pytest.mark.parametrize("index", range(6))
def test_the_evidence_shows_every_number_it_was_judged_on(index: int) -> None:
    m = supported()
    m.classifier = _classifier({"Eyeglasses": 0.05, "Smiling": 0.5}, kept={"Eyeglasses": 0.25, "Smiling": 0.75})
    finding = assess(m)[index]
    words = {w.strip(".,;:()×'") for w in finding.evidence.split()}
    hidden = [k for k, v in finding.numbers.items() if not _shown(v) & words]
    assert not hidden, (hidden, finding.evidence)


def test_the_findings_and_their_numbers_are_what_metrics_json_keeps() -> None:
    findings = assess(supported())
    kept = json.loads(json.dumps([asdict(f) for f in findings]))  # as nag.report writes them
    assert [f["numbers"] for f in kept] == [f.numbers for f in findings]
    assert [f["supported"] for f in kept] == [True] * 6


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        ("features/Eyeglasses/ratio", "×1.50", "×1.70"),
        ("interpolation/worst_step_ratio", "2.50", "3.25"),
        ("real/swd_mean", "15.0", "17.5"),
        ("probes/+100/diversity", "0.010", "0.020"),
        ("plain_codes/code_mean", "+0.10", "-0.40"),
        ("matched_at_minus3/diversity", "0.200", "0.125"),
    ],
)
def test_the_evidence_follows_its_measure(path: str, before: str, after: str) -> None:
    """The number judged is the one measured: change the measure and the number of its finding changes with it
    (and the evidence shows it)."""
    value = float(after.lstrip("×"))
    old = [f.numbers for f in assess(supported())]
    changed = assess(with_value(path, value))
    new = [f.numbers for f in changed]
    moved = [(i, k) for i, (o, n) in enumerate(zip(old, new, strict=True)) for k in o if o[k] != n.get(k)]
    measured = [(i, k) for i, k in moved if new[i][k] == pytest.approx(value)]  # the rest derive from it
    assert measured and all(after in changed[i].evidence and before not in changed[i].evidence for i, _ in measured)


def test_finding_1_needs_strictly_more_than_the_common_mean_and_than_1_1() -> None:
    def verdict(rare: float, common: float) -> bool:
        m = supported()
        m.features = {"Eyeglasses": FeatureError(0.05, rare), "Smiling": FeatureError(0.5, common)}
        return assess(m)[0].supported

    assert verdict(1.1, 1.0) is False and verdict(1.11, 1.0) is True  # rare mean exactly 1.1 is not above it
    assert verdict(1.5, 1.5) is False and verdict(1.5, 1.49) is True  # nor is a rare mean equal to the common one


def test_a_probe_at_exactly_half_the_diversity_has_not_collapsed() -> None:
    m = supported()
    m.probes = {"+100": SampleStats(swd_mean=60.0, diversity=0.1)}  # half of 0.2, SWD the same
    assert verdicts(m)[3] is False
    m.probes["+100"].diversity = 0.0999
    assert verdicts(m)[3] is True


def test_the_classifier_reading_uses_the_half_open_bounds_and_at_most_four_rare_features() -> None:
    m = supported()
    labels = {"A": 0.01, "B": 0.02, "C": 0.03, "D": 0.04, "E": 0.05, "Edge": 0.10, "Common": 0.20}
    kept = {"A": 0.5, "B": 0.4, "C": 0.3, "D": 0.2, "E": 0.1, "Edge": 0.0, "Common": 0.8}
    m.classifier = _classifier(labels, kept)
    first, _, third, *_ = assess(m)
    # 10 % is not rare (Edge is left out), 20 % is common (its 80 % is the common mean), four listed at most
    assert list(group(first, "kept").items()) == [("E", 0.1), ("D", 0.2), ("C", 0.3), ("B", 0.4)]
    assert first.numbers["kept_common_mean"] == 0.8
    assert list(group(third, "samples")) == list(group(third, "real")) == ["A", "B", "C", "D"]
    for name in "BCDE":  # with one rare feature left, the one at exactly 10 % is still not listed
        del m.classifier.frequency[name], m.classifier.reconstruction_kept[name]
    first, _, third, *_ = assess(m)
    assert group(third, "samples") == {"A": 0.01} and group(first, "kept") == {"A": 0.5}


def test_the_classifier_reading_is_taken_from_the_attribute_evaluation() -> None:
    d = details()
    d["matched0_attributes"] = {
        "accuracy_mean": 0.8,
        "frequency_gap": 0.04,
        "reconstruction_kept": {"Hat": 0.3},
        "frequency": {"Hat": {"label": 0.05, "samples": 0.01, "real": 0.06}},
        "accuracy": {"Hat": 0.8},
    }
    expected = _classifier({"Hat": 0.05}, {"Hat": 0.3}, samples={"Hat": 0.01}, real={"Hat": 0.06})
    expected.accuracy_mean, expected.frequency_gap = 0.8, 0.04
    assert report_measures(d).classifier == expected


def test_no_x_ratio_is_error_without_over_error_with() -> None:
    ratios = feature_ratios({"No_Beard": {"frequency": 0.9, "present": 0.5, "absent": 2.0, "ratio": 0.25}})
    assert ratios == {"Beard": FeatureError(pytest.approx(0.1), 4.0)}

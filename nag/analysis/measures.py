"""What the report's findings are judged on: small typed records, built once from the evaluations.

``nag.report`` evaluates the three runs into nested metric dicts (every number, kept in ``metrics.json`` as
``details``); :func:`report_measures` picks out the ones the six findings and the report's prose read, into the
records below, and is the only code that knows the dicts' keys. The findings (:mod:`nag.analysis.findings`) and the
prose (:mod:`nag.analysis.report`) read attributes, so a renamed metric fails in one place, loudly.
``asdict(measures)`` is their JSON; :func:`measures_from_json` reads it back, checking every number.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SampleStats:
    """A set of images against the real test images: multi-scale SWD (×10³, ↓) and diversity (closer to real)."""

    swd_mean: float
    diversity: float


@dataclass
class FeatureError:
    """A face feature: how often it is present, and the reconstruction error with it over without it."""

    frequency: float
    ratio: float


@dataclass
class Steps:
    """Interpolation paths: largest step / mean step (1 = even), on average and at worst."""

    step_ratio: float
    worst_step_ratio: float


@dataclass
class Codes:
    """Codes of the test images: their mean and variance over all dimensions, kurtosis, MMD² to the prior."""

    code_mean: float
    code_variance: float
    code_kurtosis: float
    mmd: float


@dataclass
class AttributeShare:
    """How often an attribute is labelled in real faces, and seen by the classifier in real faces and samples."""

    label: float
    real: float
    samples: float


@dataclass
class ClassifierReading:
    """The attribute classifier's verdicts on the matched model (datasets with attributes only)."""

    accuracy_mean: float
    frequency_gap: float
    frequency: dict[str, AttributeShare]
    reconstruction_kept: dict[str, float]


@dataclass
class ReportMeasures:
    """Everything the findings and the report's prose read (``matched`` is the model matched to N(0, 2))."""

    n_test: int
    real: SampleStats  # validation vs test images: the floor of the sample SWD, and the real diversity
    matched_samples: SampleStats  # N(0, 2) samples decoded by the matched model
    matched_reconstruction_swd: float  # the matched model's reconstructions of the test images
    probes: dict[str, SampleStats]  # the same noise translated to far-away means ("+100", "-100")
    interpolation: Steps
    features: dict[str, FeatureError]  # a No_X attribute is feature X (see feature_ratios)
    plain_samples: SampleStats  # N(0, 2) samples decoded by the plain autoencoder
    plain_codes: Codes  # against N(0, 2)
    plain_mmd_to_minus3: float
    plain_at_minus3: SampleStats
    matched_at_minus3: SampleStats  # the model matched to N(−3, 2), sampled from it
    plain_gmm: SampleStats  # the plain autoencoder decoding an ex-post GMM of its training codes
    classifier: ClassifierReading | None = field(default=None)


def feature_ratios(by_attribute: Mapping[str, Mapping[str, float]]) -> dict[str, FeatureError]:
    """``error_by_attribute``'s rows as features: a ``No_X`` attribute becomes feature ``X`` (present when the
    attribute is absent, so its frequency is 1 − f and its ratio absent / present)."""
    out = {}
    for name, s in by_attribute.items():
        if name.startswith("No_"):
            out[name[3:]] = FeatureError(1 - s["frequency"], s["absent"] / s["present"])
        else:
            out[name] = FeatureError(s["frequency"], s["ratio"])
    return out


def _samples(d: Mapping[str, Any]) -> SampleStats:
    return SampleStats(d["swd_mean"], d["diversity"])


def report_measures(details: Mapping[str, Any]) -> ReportMeasures:
    """The measures, from the report's evaluations (``nag.analysis.report.evaluate_runs``'s ``details``)."""
    rec, probes = details["matched0_reconstruction"], details["matched0_N0"]["probes"]
    lat, att = details["plain_reconstruction"]["latent"], details.get("matched0_attributes")
    classifier = None
    if att and att["frequency"]:  # an attribute judge that sees no attribute has no reading to quote
        shares = {n: AttributeShare(f["label"], f["real"], f["samples"]) for n, f in att["frequency"].items()}
        classifier = ClassifierReading(att["accuracy_mean"], att["frequency_gap"], shares, att["reconstruction_kept"])
    return ReportMeasures(
        n_test=details["n_test"],
        real=_samples(details["real_baseline"]),
        matched_samples=_samples(details["matched0_N0"]["samples"]),
        matched_reconstruction_swd=rec["reconstruction"]["swd_mean"],
        probes={mean: _samples(p) for mean, p in probes.items()},
        interpolation=Steps(rec["interpolation"]["step_ratio"], rec["interpolation"]["worst_step_ratio"]),
        features=feature_ratios(rec["by_attribute"]),
        plain_samples=_samples(details["plain_N0"]["samples"]),
        plain_codes=Codes(lat["code_mean"], lat["code_variance"], lat["code_kurtosis"], lat["mmd"]),
        plain_mmd_to_minus3=details["plain_latent_vs_N-3"]["mmd"],
        plain_at_minus3=_samples(details["plain_N-3"]["samples"]),
        matched_at_minus3=_samples(details["matched-3_N-3"]["samples"]),
        plain_gmm=_samples(details["plain_gmm"]["samples"]),
        classifier=classifier,
    )


#: The rows of the report's FID table: label -> where its numbers are in ``details``.
FIDELITY_ROWS = {
    "real vs real (validation vs test)": ("real_baseline",),
    "matched to N(0, 2): reconstructions": ("matched0_reconstruction", "reconstruction"),
    "matched to N(0, 2): samples": ("matched0_N0", "samples"),
    "plain, N(0, 2) samples": ("plain_N0", "samples"),
    "plain, ex-post GMM samples": ("plain_gmm", "samples"),
    "plain, N(−3, 2) samples": ("plain_N-3", "samples"),
    "matched to N(−3, 2): samples": ("matched-3_N-3", "samples"),
}


def fidelity_rows(details: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The FID etc. of each row that has them (none without Inception weights)."""
    out = {}
    for label, path in FIDELITY_ROWS.items():
        node: Any = details
        for key in path:
            node = node.get(key, {})
        if "fidelity" in node:
            out[label] = node["fidelity"]
    return out


# --- back from JSON ------------------------------------------------------------------------------------------
# A metrics.json may come from someone else: every field is checked against its declared type (numbers are
# numbers, finite or NaN — JSON has no NaN, so nag writes null for it), nothing else is built.


def measures_from_json(data: Any, where: str = "measures") -> ReportMeasures:
    """:class:`ReportMeasures` from ``asdict(measures)`` (e.g. ``metrics.json``'s ``measures``); a missing,
    extra or mistyped field raises ``ValueError`` naming its path."""
    return _build(ReportMeasures, data, where)


def _build(kind: Any, data: Any, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        if extra := sorted(set(data) - names):
            raise ValueError(f"{where}: unknown field(s) {', '.join(map(str, extra[:5]))}")
        if missing := sorted(n for n in names - set(data) if n != "classifier"):
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        return kind(**{n: _build(hints[n], data[n], f"{where}.{n}") for n in names if n in data})
    if origin is dict:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        return {str(k): _build(args[1], v, f"{where}.{k}") for k, v in data.items()}
    if origin in (typing.Union, types.UnionType):  # X | None
        return None if data is None else _build(next(a for a in args if a is not type(None)), data, where)
    if kind is int and isinstance(data, int) and not isinstance(data, bool):
        return data
    if kind is float:
        if data is None:
            return math.nan
        if isinstance(data, int | float) and not isinstance(data, bool) and not math.isinf(data):
            return float(data)
    raise ValueError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {data!r:.40}")

"""The lab report's six findings as measurable claims, each with an explicit criterion.

``assess(measures)`` takes the :class:`~nag.analysis.measures.ReportMeasures` that ``nag.report`` gathers and
returns, for each finding, the numbers and whether they support it. The thresholds are stated in each claim's
evidence so a reader can disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from nag.analysis.measures import ReportMeasures, feature_ratios  # noqa: F401  (feature_ratios: re-exported)

RARE, COMMON = 0.10, 0.20  # a feature is rare below 10 % of faces, common from 20 %


@dataclass
class Finding:
    claim: str
    evidence: str
    supported: bool


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def rare_features_lost(m: ReportMeasures) -> Finding:
    rare = {k: e.ratio for k, e in m.features.items() if e.frequency < RARE}
    common = {k: e.ratio for k, e in m.features.items() if e.frequency >= COMMON}
    rare_mean, common_mean = _mean(list(rare.values())), _mean(list(common.values()))
    listed = ", ".join(f"{k} ×{r:.2f}" for k, r in sorted(rare.items(), key=lambda kv: -kv[1]))
    return Finding(
        "Reconstructions keep common features (skin tone, hair) and lose rare ones (sunglasses, beard).",
        f"Reconstruction error with / without a feature — rare (< {RARE:.0%} of faces): {listed or 'none'}; "
        f"mean ×{rare_mean:.2f}. Common (≥ {COMMON:.0%}): mean ×{common_mean:.2f}. "
        "Criterion: rare mean > common mean and > 1.1." + _kept_by_classifier(m),
        bool(rare and common and rare_mean > common_mean and rare_mean > 1.1),
    )


def _kept_by_classifier(m: ReportMeasures) -> str:
    """The attribute classifier's reading of finding 1: how often a reconstruction keeps each rare feature."""
    att = m.classifier
    if att is None:
        return ""
    freq, kept = att.frequency, att.reconstruction_kept
    rare = sorted((n for n in kept if freq[n].label < RARE), key=lambda n: (kept[n], n))[:4]  # ties by name
    common = _mean([kept[n] for n in kept if freq[n].label >= COMMON])
    listed = ", ".join(f"{n} {kept[n]:.0%}" for n in rare)
    return (
        f" An attribute classifier (held-out accuracy {att.accuracy_mean:.0%}) still sees a rare feature in the "
        f"reconstruction of a face that shows it for {listed}; common features: {common:.0%} on average."
    )


def _sample_frequencies(m: ReportMeasures) -> str:
    """The classifier's reading of finding 3: do samples show the attributes as often as real faces do?"""
    att = m.classifier
    if att is None:
        return ""
    freq = att.frequency
    rare = sorted((n for n in freq if freq[n].label < RARE), key=lambda n: (freq[n].label, n))[:4]
    shown = ", ".join(f"{n} {freq[n].samples:.1%} (real {freq[n].real:.1%})" for n in rare)
    return (
        f" The attribute classifier finds the attributes in samples at a mean distance of "
        f"{att.frequency_gap:.1%} from their frequency in real faces; rare ones: {shown}."
    )


def interpolation_smooth(m: ReportMeasures) -> Finding:
    s = m.interpolation
    return Finding(
        "Latent interpolation in 11 steps changes the face gradually.",
        f"Largest step / mean step along each path: {s.step_ratio:.2f} on average, {s.worst_step_ratio:.2f} "
        "at worst (1 = perfectly even; a sudden switch would be ≈ 10). Criterion: average ≤ 2.",
        s.step_ratio <= 2.0,
    )


def matched_model_samples_faces(m: ReportMeasures) -> Finding:
    s, rec_swd, real = m.matched_samples, m.matched_reconstruction_swd, m.real
    return Finding(
        "The model matched to N(0, 2) generates faces from samples of N(0, 2), with variety.",
        f"Sample SWD {s.swd_mean:.1f} vs its reconstructions' {rec_swd:.1f} (real vs real "
        f"{real.swd_mean:.1f}); diversity {s.diversity:.3f} vs real {real.diversity:.3f}. "
        "Criterion: sample SWD ≤ 2 × reconstruction SWD and diversity ≥ half the real one." + _sample_frequencies(m),
        s.swd_mean <= 2 * rec_swd and s.diversity >= 0.5 * real.diversity,
    )


def far_probes_collapse(m: ReportMeasures) -> Finding:
    s, probes = m.matched_samples, m.probes
    parts, ok = [], True
    for mean, p in probes.items():
        collapsed = p.diversity < 0.5 * s.diversity or p.swd_mean > 2 * s.swd_mean
        ok &= collapsed
        parts.append(f"mean {mean}: diversity {p.diversity:.3f}, SWD {p.swd_mean:.1f}")
    return Finding(
        "Samples from far-away means (+100 / −100) are near-identical or broken faces.",
        f"{'; '.join(parts)} — vs N(0, 2) samples: diversity {s.diversity:.3f}, SWD {s.swd_mean:.1f}. "
        "Criterion: for every probe, diversity < half or SWD > twice that of the prior samples.",
        bool(probes) and ok,
    )


def plain_ae_near_zero_works(m: ReportMeasures) -> Finding:
    plain, matched, lat = m.plain_samples, m.matched_samples, m.plain_codes
    return Finding(
        "A plain autoencoder sampled from N(0, 2) looked similar (its codes sat near 0).",
        f"Sample SWD plain {plain.swd_mean:.1f} vs matched {matched.swd_mean:.1f}; diversity "
        f"{plain.diversity:.3f} vs {matched.diversity:.3f}. Plain codes: mean {lat.code_mean:+.2f}, "
        f"variance {lat.code_variance:.2f}, MMD² to N(0, 2) {lat.mmd:.3f}. "
        "Criterion: plain SWD ≤ 1.5 × matched SWD.",
        plain.swd_mean <= 1.5 * matched.swd_mean,
    )


def plain_ae_fails_at_minus3(m: ReportMeasures) -> Finding:
    plain, matched = m.plain_at_minus3, m.matched_at_minus3
    return Finding(
        "With the prior at N(−3, 2) the plain autoencoder fails where the matched one succeeds.",
        f"Sample SWD plain {plain.swd_mean:.1f} vs matched to N(−3, 2) {matched.swd_mean:.1f}; "
        f"diversity {plain.diversity:.3f} vs {matched.diversity:.3f}. "
        "Criterion: plain SWD ≥ 1.5 × matched SWD.",
        plain.swd_mean >= 1.5 * matched.swd_mean,
    )


FINDINGS = (
    rare_features_lost,
    interpolation_smooth,
    matched_model_samples_faces,
    far_probes_collapse,
    plain_ae_near_zero_works,
    plain_ae_fails_at_minus3,
)


def assess(measures: ReportMeasures) -> list[Finding]:
    return [f(measures) for f in FINDINGS]

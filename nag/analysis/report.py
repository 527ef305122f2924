"""The report's reproduction (the library behind ``python -m nag.report <run or sweep dir>`` and the notebook).

Finds the three runs of the report among the training runs under a directory (the plain autoencoder, the
model matched to N(0, 2) and the one matched to N(−3, 2), e.g. from
``python -m nag.train -m experiment=report_plain,report_mean0,report_mean-3``), evaluates them, regenerates
the report's figures and renders ``report.md`` — its prose is the template ``report.md`` beside this module —
with, for each of its six findings, the measured numbers and whether they support it. The criteria live in
:mod:`nag.analysis.findings`; writing the files is the entry point's (``nag/report.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import torch

from nag.analysis.attributes import attribute_metrics
from nag.analysis.evaluation import (
    RealImages,
    encode_images,
    encode_test_split,
    evaluate_reconstruction,
    evaluate_sampling,
    reconstruct_images,
)
from nag.analysis.findings import Finding
from nag.analysis.measures import Codes, ReportMeasures, report_measures
from nag.analysis.runs import Role, load_model, role_of
from nag.config.errors import UserInputError
from nag.config.text import markdown_cell, one_line
from nag.metrics.fidelity import FidSetup, fidelity_table
from nag.model.latent_edit import attribute_directions
from nag.model.latent_fit import latent_fit
from nag.model.priors import NormalPrior
from nag.runs.discovery import discover
from nag.runs.run_dir import RunDir
from nag.runs.stored_config import local_paths
from nag.samplers.core import GaussianMixtureSampler
from nag.training.module import NAGModule

log = logging.getLogger(__name__)

#: report.md's prose, with ``$placeholders`` for what was measured.
TEMPLATE = Template((Path(__file__).with_name("report.md")).read_text(encoding="utf-8"))

ROLES = {"plain": "plain autoencoder (matching=none)", "mean0": "matched to N(0, 2)", "mean-3": "matched to N(-3, 2)"}
HOW_TO = "python -m nag.train -m experiment=report_plain,report_mean0,report_mean-3"


def report_role(role: Role) -> str | None:
    """Which of the report's runs a trained model is (``plain``, ``mean0``, ``mean-3``), or None."""
    if role.plain:
        return "plain"
    if role.variance == 2.0:
        return {0.0: "mean0", -3.0: "mean-3"}.get(role.normal_mean)  # type: ignore[arg-type]
    return None


def find_runs(root: Path) -> dict[str, RunDir]:
    """The newest run of each role under ``root`` (a run dir, a sweep dir or any folder above them), judged by
    what each run's checkpoint stores. A run whose checkpoint is refused is passed over with a warning (and
    named if its role is then missing)."""
    runs: dict[str, RunDir] = {}
    passed_over: list[str] = []
    with_ckpt = [r for r in discover(root) if r.last_ckpt is not None]
    for run in sorted(with_ckpt, key=lambda r: r.last_ckpt.stat().st_mtime):  # type: ignore[union-attr]
        try:
            role = report_role(role_of(load_model(run, best=False)))
        except UserInputError as e:
            log.warning("passed over %s: %s", run.path, e)
            passed_over.append(f"{run.path} ({one_line(str(e), 160)})")
            continue
        if role is not None:
            runs[role] = run
    missing = [r for r in ROLES if r not in runs]
    if missing:
        found = ", ".join(f"{r}: {run.path}" for r, run in runs.items()) or "none"
        skipped = f"; passed over: {'; '.join(passed_over[:3])}" if passed_over else ""
        raise UserInputError(
            f"{root} lacks the report's run(s) {', '.join(ROLES[m] for m in missing)} (found {found}{skipped}). "
            f"Train them with: {HOW_TO}"
        )
    return runs


def newest_report_sweep(multirun: Path) -> tuple[Path, dict[str, RunDir]]:
    """The newest sweep under ``multirun`` (``multirun/<date>/<time>``, newest by name) holding the report's three
    runs, and those runs; sweeps of other experiments are passed over. What the notebooks use when
    ``NAG_RUN_DIR`` is unset."""
    sweeps = sorted((p for p in multirun.glob("*/*") if p.is_dir()), key=lambda p: (p.parent.name, p.name))
    for sweep in reversed(sweeps):
        try:
            runs = find_runs(sweep)
            describe_runs(runs)  # its configs must be readable too
            return sweep, runs
        except (UserInputError, OSError) as e:
            log.info("passed over %s: %s", sweep, one_line(str(e), 200))
            continue
    raise UserInputError(
        f"no sweep under {multirun} holds the report's three runs ({len(sweeps)} sweep(s) looked at). Train them "
        f"with: {HOW_TO}, or set NAG_RUN_DIR to a sweep that has them."
    )


def normal(dim: int, mean: float) -> NormalPrior:
    return NormalPrior(dim, mean=mean, variance=2.0)


def side_by_side(*grids: torch.Tensor, gap: int = 8) -> torch.Tensor:
    """Image grids next to each other, white-padded to one height, with a white gap: ``(3, H, ΣW + gaps)``."""
    h = max(g.shape[1] for g in grids)
    parts: list[torch.Tensor] = []
    for g in grids:
        if parts:
            parts.append(torch.ones(3, h, gap))
        parts.append(torch.nn.functional.pad(g, (0, 0, 0, h - g.shape[1]), value=1.0))
    return torch.cat(parts, dim=2)


@dataclass
class ReportEvaluation:
    """What ``evaluate_runs`` measured: the records the findings read, every number (nested, JSON-ready) and the
    report's figures (name -> grid ``(3, H, W)``)."""

    measures: ReportMeasures
    details: dict[str, Any]
    figures: dict[str, torch.Tensor]


def evaluate_runs(
    runs: dict[str, RunDir],
    real: RealImages,
    n_samples: int = 500,
    seed: int = 0,
    classifier: Any = None,
    fid: FidSetup | None = None,
) -> ReportEvaluation:
    """Every evaluation the findings need, and the report's figures. With an attribute ``classifier`` (datasets
    with attributes), also its verdict on the matched model's reconstructions and samples
    (``details["matched0_attributes"]``)."""
    models: dict[str, NAGModule] = {r: load_model(run, best=False) for r, run in runs.items()}
    dim = models["plain"].hparams.latent_dim
    n0, n3 = normal(dim, 0.0), normal(dim, -3.0)

    def sampling(role: str, prior: NormalPrior, sampler: Any = None, probes: tuple[float, ...] = ()):
        return evaluate_sampling(models[role], real, prior, sampler, n_samples, probes, seed, fid)

    recon_m0 = evaluate_reconstruction(models["mean0"], real, n0, seed, fid)
    evals = {
        "matched0_N0": sampling("mean0", n0, probes=(100.0, -100.0)),
        "plain_N0": sampling("plain", n0),
        "plain_N-3": sampling("plain", n3),
        "matched-3_N-3": sampling("mean-3", n3),
        "plain_gmm": sampling("plain", n0, GaussianMixtureSampler(10)),
    }
    metrics: dict[str, Any] = {
        "n_test": len(real.test),
        "real_baseline": real.baseline(seed, fid),
        "matched0_reconstruction": recon_m0.metrics,
        "plain_reconstruction": evaluate_reconstruction(models["plain"], real, n0, seed).metrics,
        "plain_latent_vs_N-3": latent_fit(encode_test_split(models["plain"], real), n3, seed),
        "matched-3_latent": latent_fit(encode_test_split(models["mean-3"], real), n3, seed),
        **{k: ev.metrics for k, ev in evals.items()},
    }
    if classifier is not None and real.train_attributes is not None:
        m0 = models["mean0"]
        directions = attribute_directions(encode_images(m0, real.train), real.train_attributes, real.names)
        reconstructions = reconstruct_images(m0, real.test)
        samples = evals["matched0_N0"].samples
        metrics["matched0_attributes"] = attribute_metrics(
            classifier, real.names, real.test, real.attributes, reconstructions, samples, m0, directions
        )
    figures = {
        "reconstructions": recon_m0.figures["reconstructions"],
        "interpolation": recon_m0.figures["interpolation"],
        "samples_matched_N0": evals["matched0_N0"].figures["samples"],
        "probe_mean+100": evals["matched0_N0"].figures["probe_mean+100"],
        "probe_mean-100": evals["matched0_N0"].figures["probe_mean-100"],
        "samples_plain_N0": evals["plain_N0"].figures["samples"],
        "plain_vs_matched_N-3": side_by_side(
            evals["plain_N-3"].figures["samples"], evals["matched-3_N-3"].figures["samples"]
        ),
        "samples_plain_gmm": evals["plain_gmm"].figures["samples"],
    }
    return ReportEvaluation(report_measures(metrics), metrics, figures)


def describe_runs(runs: dict[str, RunDir]) -> list[str]:
    """The runs table's rows (matching, λ, epochs, image size), read from each stored config as data: a config
    that is not a mapping, lacks a section, holds ``???`` or an interpolation it may not is refused here,
    naming the file, before any evaluation."""
    rows = []
    for role in ROLES:
        run = runs[role]
        paths = local_paths(run.path)
        cfg = run.config
        target = cfg.get("matching._target_", paths)
        values = [
            str(target).split(".")[-1],
            cfg.get("matching.weight", paths),
            cfg.get("trainer.max_epochs", paths),
            cfg.get("data.image_size", paths),
        ]
        cfg.section("data", paths)
        matching, weight, epochs, size = (markdown_cell(v, 60) for v in values)
        rows.append(f"| {ROLES[role]} | {markdown_cell(run.path)} | {matching} (λ={weight}) | {epochs} | {size} px |")
    return rows


def plain_codes_verdict(lat: Codes) -> str:
    """Why sampling the plain autoencoder near 0 did or did not work, from its measured code statistics."""
    spread = lat.code_variance / 2.0  # against the prior's variance 2
    centred = abs(lat.code_mean) < lat.code_variance**0.5
    if centred and 0.5 <= spread <= 2:
        return "so N(0, 2) covers them and its samples decode into faces much like a matched model's."
    if centred and spread > 2:
        return (
            f"but spread {spread:.1f}× wider than N(0, 2): its samples land only in the middle of the code "
            "cloud and decode into a narrow set of averaged faces."
        )
    if centred:
        return f"but {1 / spread:.1f}× narrower than N(0, 2): most of its samples fall outside the codes."
    return "but off-centre against their own spread: N(0, 2) misses most of them."


#: The report's figures (file stem -> caption), in the order report.md shows them.
CAPTIONS = {
    "reconstructions": "Test faces (top) and their reconstructions by the model matched to N(0, 2).",
    "interpolation": "Decoding (1 − i/10)·z_A + (i/10)·z_B, i = 0..10 (the report's formula has a typo).",
    "samples_matched_N0": "Samples of N(0, 2) decoded by the model matched to it.",
    "probe_mean+100": "The same noise translated to mean +100: far from the codes.",
    "probe_mean-100": "Translated to mean −100.",
    "samples_plain_N0": "The plain autoencoder decoding samples of N(0, 2).",
    "plain_vs_matched_N-3": "Samples of N(−3, 2): plain autoencoder (left), model matched to N(−3, 2) (right).",
    "samples_plain_gmm": "The plain autoencoder decoding a 10-component GMM fitted to its training codes.",
}


def render_markdown(
    rows: list[str],
    m: ReportMeasures,
    findings: list[Finding],
    seconds: float,
    fidelity: dict[str, dict[str, float]] | None = None,
) -> str:
    """``report.md``: the prose of ``nag/analysis/report.md`` with the measured numbers filled in."""
    plain, lat, matched, gmm = m.plain_samples, m.plain_codes, m.matched_samples, m.plain_gmm
    verdicts = [
        f"| {i} | {f.claim} | {f.evidence} | **{'supported' if f.supported else 'not supported'}** |"
        for i, f in enumerate(findings, 1)
    ]
    values = {
        "runs": "\n".join(rows),
        "findings": "\n".join(verdicts),
        "n_test": m.n_test,
        "real_swd": f"{m.real.swd_mean:.1f}",
        "real_diversity": f"{m.real.diversity:.3f}",
        "code_mean": f"{lat.code_mean:+.2f}",
        "code_variance": f"{lat.code_variance:.2f}",
        "code_kurtosis": f"{lat.code_kurtosis:.2f}",
        "code_std": f"{lat.code_variance**0.5:.2f}",
        "mmd_n0": f"{lat.mmd:.3f}",
        "mmd_n3": f"{m.plain_mmd_to_minus3:.3f}",
        "verdict": plain_codes_verdict(lat),
        "plain_swd": f"{plain.swd_mean:.1f}",
        "plain_diversity": f"{plain.diversity:.3f}",
        "matched_swd": f"{matched.swd_mean:.1f}",
        "matched_diversity": f"{matched.diversity:.3f}",
        "gmm_swd": f"{gmm.swd_mean:.1f}",
        "gmm_diversity": f"{gmm.diversity:.3f}",
        "figures": "\n\n".join(f"**{caption}**\n\n![{name}]({name}.png)" for name, caption in CAPTIONS.items()),
        "seconds": f"{seconds:.0f}",
        "fidelity": fidelity_table(fidelity) if fidelity else "Not measured: no Inception weights (see the README).",
    }
    return TEMPLATE.substitute(values)

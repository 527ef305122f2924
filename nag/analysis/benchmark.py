"""The benchmark table: every job of a sweep scored with every sampler on equal terms (``nag.compare --samplers``).

One row per (job, sampler): the swept keys, the sampler (``prior``: the job's own prior; ``gmm``: a 10-component
Gaussian mixture on its training codes, ``gmm<k>`` one of k; ``gaussian``; ``flow``:
:class:`~nag.samplers.flow.FlowSampler`), and what the field reports — FID, KID, precision and recall in Inception
features (at one n, with the real-vs-real floor), the sample SWD (multi-scale, against the test images), the
attribute-frequency gap (mean over attributes of |frequency in samples − frequency in real test faces|, by the
dataset's attribute classifier) and the largest gap with its attribute — beside the job's reconstruction PSNR and
training time. Every job is scored against the same real images, FID reference, classifier and seeds.
``samplers.csv`` / ``samplers.md`` hold the table and ``attribute_gaps.csv`` the per-attribute frequencies (the
rare-feature question of the README's benchmark).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from nag.analysis.evaluation import RealImages, evaluate_sampling
from nag.analysis.tables import cell, fixed, markdown_table
from nag.config.errors import UserInputError
from nag.config.text import markdown_cell
from nag.samplers.core import make_sampler

log = logging.getLogger(__name__)

#: Columns of the table after the job's keys and the sampler.
COLUMNS = (
    "fid",
    "fid_inf",
    "kid",
    "precision",
    "recall",
    "sample_swd",
    "freq_gap",
    "max_gap",
    "max_gap_attr",
    "psnr",
    "train_s",
)


def parse_samplers(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        make_sampler(n, key="--samplers")  # refused by name
    if not names or len(set(names)) < len(names):
        raise UserInputError(f"--samplers {text!r}: give distinct names, e.g. prior,gmm,flow.")
    return names


@dataclass
class Attributes:
    """The dataset's attribute judge and the real test faces' frequencies it sees; gaps are measured over the
    attributes it can see (:meth:`~nag.analysis.attributes.AttributeClassifier.judged`) only."""

    clf: Any
    names: tuple[str, ...]
    real_pred: torch.Tensor  # (N, A): the classifier on the real test faces, once for every job
    # Further judges (the same network trained from other seeds) and their verdicts on the real test faces: how
    # far they disagree on the same samples is the instrument's own spread (``nag.compare --judges``).
    others: tuple[tuple[Any, torch.Tensor], ...] = ()

    @property
    def real_freq(self) -> torch.Tensor:  # (A,)
        return self.real_pred.float().mean(0).cpu()

    @property
    def judged(self) -> torch.Tensor:  # (A,) bool
        return self.clf.judged()

    def gaps(self, samples: torch.Tensor) -> dict[str, Any]:
        freq = self.clf.predict(samples).float().mean(0).cpu()
        judged = self.judged
        gap = (freq - self.real_freq).abs().masked_fill(~judged, float("nan"))
        if not judged.any():
            return {"freq_gap": None, "max_gap": None, "max_gap_attr": "", "frequency": {}}
        worst = int(gap.nan_to_num(-1.0).argmax())
        out = {
            "freq_gap": float(gap[judged].mean()),
            "max_gap": float(gap[worst]),
            "max_gap_attr": self.names[worst],
            "frequency": {n: float(f) for n, f, ok in zip(self.names, freq, judged, strict=True) if ok},
        }
        if self.others:
            spread = self.judge_spread(samples, freq - self.real_freq)
            out["judge_spread"] = spread
            out["judge_gap_spread"] = sum(spread.values()) / len(spread) if spread else None
        return out

    def judge_spread(self, samples: torch.Tensor, lead_gap: torch.Tensor) -> dict[str, float]:
        """Per attribute the lead judge sees: the range (max − min) over every judge that also sees it of the
        signed gap, samples − real test faces, each judge reading both sides itself."""
        lead = self.judged
        gaps = [(lead, lead_gap)]
        for clf, real_pred in self.others:
            freq = clf.predict(samples).float().mean(0).cpu()
            gaps.append((clf.judged(), freq - real_pred.float().mean(0).cpu()))
        spread = {}
        for i, name in enumerate(self.names):
            seen = [float(g[i]) for ok, g in gaps if ok[i]]
            if lead[i] and len(seen) > 1:
                spread[name] = max(seen) - min(seen)
        return spread


def load_attributes(
    dm: Any, real: RealImages, device: Any, epochs: int = 12, n_train: int = 20_000, judges: int = 1
) -> Attributes | None:
    """The classifier of ``nag.evaluate`` (trained once per dataset, cached beside the data) and, with
    ``judges`` > 1, the same network trained from seeds 1 … judges − 1 (each cached too); None without
    attributes."""
    from nag.analysis.attributes import load_or_train_classifier

    if not real.names:
        return None
    clfs = [load_or_train_classifier(dm, dm.cache_dir, epochs, n_train, seed, str(device)) for seed in range(judges)]
    lead, *others = clfs
    verdicts = tuple((c, c.predict(real.test)) for c in others)
    return Attributes(lead, tuple(real.names), lead.predict(real.test), verdicts)


@dataclass
class SamplerTable:
    """The rows (one per job and sampler), the key columns, the real floor and the real frequencies."""

    rows: list[dict[str, Any]]
    keys: list[str]
    floor: dict[str, float] = field(default_factory=dict)
    real_frequency: dict[str, float] = field(default_factory=dict)  # the judged attributes'
    judge: dict[str, float] = field(default_factory=dict)  # every attribute: the judge's balanced accuracy
    rare: list[dict[str, Any]] = field(default_factory=list)  # per job and attribute: nag.analysis.rare

    @property
    def not_judged(self) -> dict[str, float]:
        """The attributes the judge cannot see (below the threshold, or NaN), with its balanced accuracy."""
        from nag.analysis.attributes import JUDGED_AT

        return {n: b for n, b in self.judge.items() if not b >= JUDGED_AT}


def score_samplers(
    model: Any,
    run: Any,
    row: dict[str, Any],
    keys: list[str],
    real: RealImages,
    samplers: list[str],
    n_samples: int,
    seed: int,
    fid: Any,
    attrs: Attributes | None,
    psnr: float,
    prior_gen: Any = None,
    codes: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """The table's rows of one job (its reconstruction ``psnr`` given): each sampler's samples, scored; the
    prior's evaluation ``prior_gen`` is reused when the caller has it (the same seed and n), and so are the
    training images' ``codes`` (every ex-post sampler fits the same codes)."""
    from nag.runs.run_dir import SAMPLERS

    metrics = run.metrics or {}
    train_s = metrics.get("time/train_seconds")
    out = []
    for name in samplers:
        if name == "prior" and prior_gen is not None:
            gen = prior_gen
        else:
            sampler = make_sampler(name, store=str(run / SAMPLERS))
            gen = evaluate_sampling(
                model, real, model.prior, sampler, n_samples, probes=(), seed=seed, fid=fid, codes=codes
            )
        r: dict[str, Any] = {
            "job": row["job"],
            **{k: row.get(k, "") for k in keys},
            "sampler": name,
            "psnr": psnr,
            "train_s": float(train_s) if isinstance(train_s, int | float) else None,
            "sample_swd": float(gen.metrics["samples"]["swd_mean"]),
        }
        fidelity = gen.metrics["samples"].get("fidelity")
        for k in ("fid", "fid_inf", "kid", "precision", "recall"):  # FID∞ where --fid-inf asks for it
            r[k] = float(fidelity[k]) if fidelity and k in fidelity else None
        if attrs is not None and gen.samples is not None:
            gaps = attrs.gaps(gen.samples)
            r.update({k: gaps[k] for k in ("freq_gap", "max_gap", "max_gap_attr")}, frequency=gaps["frequency"])
            if "judge_spread" in gaps:  # --judges: how far the judges' verdicts on these samples differ
                r.update(judge_gap_spread=gaps["judge_gap_spread"], judge_spread=gaps["judge_spread"])
        out.append(r)
        log.info("scored %s with sampler %s", row["job"], name)
    return out


def columns(table: SamplerTable) -> list[str]:
    """:data:`COLUMNS`, and ``judge_gap_spread`` (the mean over the judged attributes of the judges' range on the
    same samples) where the table was scored by several judges."""
    several = any(r.get("judge_gap_spread") is not None for r in table.rows)
    return [*COLUMNS, *(("judge_gap_spread",) if several else ())]


def markdown(table: SamplerTable) -> str:
    lines = markdown_table(["job", *table.keys, "sampler", *columns(table)], table.rows)
    if table.floor:
        lines += ["", "Real vs real (the floor): " + ", ".join(f"{k} {cell(v)}" for k, v in table.floor.items())]
    return "\n".join(lines) + "\n"


def by_job_markdown(table: SamplerTable) -> str:
    """The table as the README shows it (``compare/benchmark.md``): one row per job, one cell per sampler —
    FID · sample SWD · attribute gap in percentage points (– where not measured) — then the reconstruction PSNR
    and the training time."""
    samplers = list(dict.fromkeys(r["sampler"] for r in table.rows))
    cols = ["job", *table.keys, *(f"{s}: FID · SWD · gap" for s in samplers), "PSNR", "train s"]
    jobs: dict[str, dict[str, Any]] = {}
    for r in table.rows:
        head = {
            "job": r["job"],
            **{k: r.get(k) for k in table.keys},
            "PSNR": fixed(r.get("psnr"), 2),
            "train s": fixed(r.get("train_s"), 0),
        }
        job = jobs.setdefault(r["job"], head)
        gap = r.get("freq_gap")
        job[f"{r['sampler']}: FID · SWD · gap"] = " · ".join(
            [
                fixed(r.get("fid"), 0),
                fixed(r.get("sample_swd"), 0),
                fixed(100 * gap if isinstance(gap, float) else None, 1),
            ]
        )
    lines = markdown_table(cols, list(jobs.values()))
    if table.floor:
        floor = table.floor
        lines += [
            "",
            f"Real vs real: FID {fixed(floor.get('fid'), 1)} (n = {floor.get('fid_n', '–')}), "
            f"sample SWD {fixed(floor.get('sample_swd'), 1)}; gap: mean over the judged attributes of "
            "|frequency in the samples − in the real test faces|, percentage points.",
        ]
    if table.not_judged:
        from nag.analysis.attributes import JUDGED_AT

        shown = ", ".join(f"{markdown_cell(n)} ({fixed(b, 2)})" for n, b in table.not_judged.items())
        lines += ["", f"Not judged (the attribute judge's held-out balanced accuracy is below {JUDGED_AT}): {shown}."]
    return "\n".join(lines) + "\n"


def csv_rows(table: SamplerTable) -> tuple[list[str], list[list[Any]]]:
    cols = ["job", *table.keys, "sampler", *columns(table)]
    return cols, [[r.get(c) for c in cols] for r in table.rows]


def attribute_rows(table: SamplerTable) -> tuple[list[str], list[list[Any]]]:
    """Per attribute: the judge's balanced accuracy, the real frequency and each (job, sampler)'s, for
    ``attribute_gaps.csv`` (blank where the judge cannot see the attribute)."""
    names = list(table.judge or table.real_frequency)
    cols = ["job", *table.keys, "sampler", *names]
    blank = [""] * len(table.keys)
    rows: list[list[Any]] = [
        ["judge balanced accuracy", *blank, "", *(table.judge.get(n) for n in names)],
        ["real", *blank, "", *(table.real_frequency.get(n) for n in names)],
    ]
    for r in table.rows:
        freq = r.get("frequency") or {}
        rows.append([r["job"], *(r.get(k, "") for k in table.keys), r["sampler"], *(freq.get(n) for n in names)])
    return cols, rows


def judge_rows(table: SamplerTable) -> tuple[list[str], list[list[Any]]]:
    """Per (job, sampler) scored by several judges: each judged attribute's range of the gap over the judges
    (a fraction, as ``attribute_gaps.csv``), for ``judge_spread.csv``."""
    names = list(table.real_frequency)
    cols = ["job", *table.keys, "sampler", *names]
    rows = [
        [r["job"], *(r.get(k, "") for k in table.keys), r["sampler"], *(r["judge_spread"].get(n) for n in names)]
        for r in table.rows
        if r.get("judge_spread") is not None
    ]
    return cols, rows


def rare_rows(table: SamplerTable, samplers: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Per job and attribute: where it is lost (:mod:`nag.analysis.rare`), for ``rare_features.csv``."""
    from nag.analysis.rare import STAGES

    cols = ["job", *table.keys, "attribute", *STAGES, *samplers]
    return cols, [[r.get(c) for c in cols] for r in table.rare]


#: The reconstruction a distance may cost at its benchmark λ: at most this times the plain autoencoder's.
RECON_SLACK = 1.25


def pick_lambdas(
    rows: list[dict[str, Any]], arm_key: str = "arm", weight_key: str = "matching.weight", slack: float = RECON_SLACK
) -> dict[str, dict[str, Any]]:
    """The benchmark's λ per distance from a λ search (``experiment=benchmark_lambda``, compared): among the λ
    whose validation reconstruction is at most ``slack`` × the plain autoencoder's, the one whose held-out codes
    fit the prior best (lowest latent MMD²); when none is within, the one with the best reconstruction.

    Returns ``{arm: {"weight", "val_recon", "latent_mmd", "within"}}``.
    """
    ok = [
        r
        for r in rows
        if r.get("status") == "ok" and r.get("val_recon") is not None and r.get("latent_mmd") is not None
    ]
    plain = [r["val_recon"] for r in ok if r.get(arm_key) == "plain"]
    if not plain:
        raise UserInputError("--pick-lambda needs the plain autoencoder's jobs (arm=plain) in the sweep.")
    limit = slack * min(plain)
    picks: dict[str, dict[str, Any]] = {}
    for arm in sorted({str(r.get(arm_key)) for r in ok} - {"plain"}):
        tried = [r for r in ok if r.get(arm_key) == arm]
        within = [r for r in tried if r["val_recon"] <= limit]
        best = min(within, key=lambda r: r["latent_mmd"]) if within else min(tried, key=lambda r: r["val_recon"])
        picks[arm] = {
            "weight": float(best[weight_key]),
            "val_recon": best["val_recon"],
            "latent_mmd": best["latent_mmd"],
            "within": bool(within),
        }
    return picks


def picks_markdown(picks: dict[str, dict[str, Any]]) -> str:
    lines = ["| arm | λ | val_recon | latent_mmd | within 1.25× plain's recon |", "|---|---|---|---|---|"]
    lines += [
        f"| {a} | {cell(p['weight'])} | {cell(p['val_recon'])} | {cell(p['latent_mmd'])} | "
        f"{'yes' if p['within'] else 'no (best recon)'} |"
        for a, p in picks.items()
    ]
    return "\n".join(lines) + "\n"

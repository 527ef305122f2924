"""Comparing the jobs of a sweep (the library behind ``python -m nag.compare``).

One row per job: the swept keys (only those that vary), its status, its final metrics from ``metrics.json`` and,
with ``evaluate=True``, the evaluation of its best checkpoint by the same code as ``nag.evaluate`` against one
shared real baseline, and each job's sample grid. ``nag/compare.py`` writes them as ``summary.csv`` /
``summary.md``, a table of sample grids (``samples.png``) and a metric against the numeric swept key
(``<metric>_vs_<key>.png``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nag.analysis.benchmark import SamplerTable, load_attributes, score_samplers
from nag.analysis.evaluation import RealImages, encode_images, evaluate_reconstruction, evaluate_sampling
from nag.analysis.rare import rare_features
from nag.analysis.runs import data_config, load_data, load_model
from nag.analysis.tables import cell, markdown_table
from nag.config.errors import UserInputError
from nag.config.text import one_line
from nag.metrics.fidelity import FidSetup
from nag.model.inference import resolve_device
from nag.model.priors import fixed_draw
from nag.runs.discovery import discover, swept_keys
from nag.runs.overrides import override_values
from nag.runs.run_dir import REASON_LIMIT, RunDir
from nag.training.figures import image_grid

log = logging.getLogger(__name__)

#: Columns read from each job's metrics.json: column -> logged name.
TRAINING_COLUMNS = {
    "val_recon": "val/recon",
    "code_mean": "latent/code_mean",
    "code_var": "latent/code_variance",
    "code_kurt": "latent/code_kurtosis",
    "latent_mmd": "latent/mmd",
}
#: Columns added by --evaluate: column -> (section, key) of the evaluation's metrics.
EVALUATION_COLUMNS = {
    "sample_swd": ("samples", "swd_mean"),
    "diversity": ("samples", "diversity"),
    "psnr": ("reconstruction", "psnr"),
    "ssim": ("reconstruction", "ssim"),
}
# With Inception weights (nag.metrics.fidelity): the field's sample metrics of each job, at one n.
FIDELITY_COLUMNS = {"fid": "fid", "kid": "kid", "precision": "precision", "recall": "recall"}
N_GRID = 16  # samples per job in samples.png (a 4 x 4 grid)


@dataclass
class Comparison:
    """The table (one dict per job), its columns, and the figures written."""

    rows: list[dict[str, Any]]
    keys: list[str]
    metric_columns: list[str]
    baseline: dict[str, float] = field(default_factory=dict)
    grids: list[Tensor | None] = field(default_factory=list)  # one sample grid (3, H, W) per job, or None
    metric: str = "latent_mmd"  # the column plotted against the numeric swept key
    files: list[Path] = field(default_factory=list)  # what the entry point wrote
    samplers: SamplerTable | None = None  # with samplers: one row per job and sampler (nag.analysis.benchmark)

    @property
    def columns(self) -> list[str]:
        return ["job", *self.keys, "status", *self.metric_columns]


def compare(
    root: Path,
    evaluate: bool = False,
    metric: str | None = None,
    n_eval: int = 500,
    n_samples: int = 500,
    device: str = "auto",
    seed: int = 0,
    fid: dict[str, Any] | None = None,
    samplers: list[str] | None = None,
    on_job: Callable[[SamplerTable], None] | None = None,
    judges: int = 1,
) -> Comparison:
    """Compare every run under ``root`` (nothing is written: ``nag/compare.py`` writes the result); with
    ``samplers`` (implies ``evaluate``) also the benchmark table, each job scored with each sampler, and
    ``on_job(table)`` called after each scored job (the entry point writes the table so far: scoring takes
    minutes per job, and a killed comparison keeps the jobs it finished). ``judges`` > 1 scores the attribute
    frequencies with that many attribute judges (seeds 0 …) and reports their spread on each sampler's samples."""
    evaluate = evaluate or bool(samplers)
    runs = discover(root)
    if not runs:
        raise UserInputError(
            f"no training runs under {root} (a run dir holds .hydra/config.yaml); give a sweep dir such as "
            "multirun/<date>/<time>, a run dir, or a folder above them."
        )
    metric = metric or ("sample_swd" if evaluate else "latent_mmd")
    allowed = [*TRAINING_COLUMNS, *((*EVALUATION_COLUMNS, *FIDELITY_COLUMNS) if evaluate else ())]
    if metric not in allowed:
        raise UserInputError(
            f"--metric {metric} is not a column; choose one of {allowed}"
            f"{'' if evaluate else ' (or add --evaluate for the sample metrics)'}."
        )
    keys = swept_keys(runs)
    device = resolve_device(device)
    rows = [_row(run, root, keys) for run in runs]
    grids: list[Tensor | None] = [None] * len(runs)
    metric_columns = list(TRAINING_COLUMNS)
    baseline: dict[str, float] = {}
    table = SamplerTable([], keys) if samplers else None
    if evaluate:
        baseline = _evaluate(
            runs, rows, grids, n_eval, n_samples, device, seed, fid or {}, samplers or [], table, on_job, judges
        )
        metric_columns += list(EVALUATION_COLUMNS)
        if "fid" in baseline:
            metric_columns += list(FIDELITY_COLUMNS)
    else:
        for i, run in enumerate(runs):
            if run.best_ckpt is not None and rows[i]["status"] != "unreadable":
                model = _load(run, rows[i], device)
                if model is not None:
                    with torch.no_grad():
                        z = fixed_draw(model.prior, N_GRID, seed).to(model.device)
                        grids[i] = image_grid(model.decode(z).float().cpu(), nrow=4)
    return Comparison(rows, keys, metric_columns, baseline, grids, metric, samplers=table)


def _load(run: RunDir, row: dict[str, Any], device: str) -> Any:
    """The job's model, or None with the row marked unreadable (a refused or damaged checkpoint is one job's
    problem, not the comparison's)."""
    try:
        return load_model(run, device)
    except UserInputError as e:
        row["status"], row["reason"] = "unreadable", one_line(str(e), REASON_LIMIT)
        log.warning("%s: %s", run.path, e)
        return None


def _row(run: RunDir, root: Path, keys: list[str]) -> dict[str, Any]:
    try:
        values = override_values(run.overrides)
    except (UserInputError, OSError):
        values = {}
    row: dict[str, Any] = {"job": str(run.path.relative_to(root)) if run.path != root else run.path.name}
    row.update({k: values.get(k, "") for k in keys})
    row["status"] = run.status
    try:
        metrics = run.metrics or {}
    except (UserInputError, OSError):
        metrics = {}
    for column, name in TRAINING_COLUMNS.items():
        value = metrics.get(name)
        row[column] = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
    row["reason"] = run.reason
    return row


def _evaluate(
    runs: list[RunDir],
    rows: list[dict[str, Any]],
    grids: list[Tensor | None],
    n_eval: int,
    n_samples: int,
    device: str,
    seed: int,
    fid_options: dict[str, Any],
    samplers: list[str],
    table: SamplerTable | None,
    on_job: Callable[[SamplerTable], None] | None = None,
    judges: int = 1,
) -> dict[str, float]:
    """Evaluate each finished job's best checkpoint against one shared real baseline (and, with Inception
    weights, the training split's FID reference); with ``samplers``, score each into ``table``."""
    done = [i for i, run in enumerate(runs) if rows[i]["status"] == "ok" and run.best_ckpt is not None]
    if not done:
        raise UserInputError("--evaluate: no job finished with a checkpoint to evaluate.")
    datas = {}
    for i in done:
        try:
            datas[i] = data_config(runs[i])
        except UserInputError as e:
            raise UserInputError(f"--evaluate: job {rows[i]['job']}: {e}") from None
    first = done[0]
    if any(d != datas[first] for d in datas.values()):
        raise UserInputError(
            "--evaluate compares every job against one real baseline, but the jobs were trained on different data; "
            "compare them without --evaluate, or one data setting at a time."
        )
    dm = load_data(runs[first])
    ex_post = any(s != "prior" for s in samplers)  # the training codes an ex-post sampler fits (as nag.evaluate)
    real = RealImages.load(dm, n_eval=n_eval, n_fit=5000 if ex_post else 0)
    baseline = real.baseline(seed)
    fid = FidSetup.load(dm, real, fid_options, device, seed)
    attrs = load_attributes(dm, real, device, judges=judges) if table is not None else None
    floor = {"sample_swd": baseline["swd_mean"], "diversity": baseline["diversity"]}
    if fid is not None:  # the real-vs-real floor at the jobs' n; every FID of the table is at fid_n images
        floor.update({c: fid.floor[k] for c, k in FIDELITY_COLUMNS.items()}, fid_n=fid.n)
        if "fid_inf" in fid.floor:  # FID∞ of real vs real beside the jobs' (--fid-inf)
            floor["fid_inf"] = fid.floor["fid_inf"]
    if table is not None:
        table.floor = dict(floor)
        if attrs is not None:
            judged = attrs.judged.tolist()
            table.real_frequency = {
                n: float(f) for n, f, ok in zip(attrs.names, attrs.real_freq, judged, strict=True) if ok
            }
            table.judge = dict(zip(attrs.names, map(float, attrs.clf.balanced_accuracy), strict=True))
    for i in done:
        model = _load(runs[i], rows[i], device)
        if model is None:
            continue
        rec = evaluate_reconstruction(model, real, model.prior, seed)
        gen = evaluate_sampling(model, real, model.prior, None, n_samples, probes=(), seed=seed, fid=fid)
        metrics = {**rec.metrics, **gen.metrics}
        for column, (section, key) in EVALUATION_COLUMNS.items():
            rows[i][column] = float(metrics[section][key])
        if fid is not None:
            rows[i].update({c: float(metrics["samples"]["fidelity"][k]) for c, k in FIDELITY_COLUMNS.items()})
        grids[i] = image_grid(gen.samples[:N_GRID], nrow=4) if gen.samples is not None else None
        if table is not None:
            # The training codes, encoded once for every ex-post sampler and the rare-feature probe.
            codes = encode_images(model, real.train) if len(real.train) else None
            scored = score_samplers(
                model,
                runs[i],
                rows[i],
                table.keys,
                real,
                samplers,
                n_samples,
                seed,
                fid,
                attrs,
                rows[i]["psnr"],
                prior_gen=gen,
                codes=codes,
            )
            table.rows += scored
            stages = rare_features(model, real, attrs, codes) if attrs is not None else None
            if stages is not None:
                head = {"job": rows[i]["job"], **{k: rows[i].get(k, "") for k in table.keys}}
                table.rare += stages.rows(head, {r["sampler"]: r.get("frequency") or {} for r in scored})
            if on_job is not None:
                on_job(table)
        log.info("evaluated %s", runs[i].path)
    return floor


def _text_table(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    cells = [[cell(r.get(c), digits=3) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    return [
        ln.rstrip() for ln in lines + ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    ]


def table(result: Comparison, width: int = 100) -> str:
    """The comparison as text for the terminal: one table, or (when wider than ``width``) the training and the
    evaluation columns as two tables; failed jobs' reasons below."""
    lines = _text_table(result.rows, result.columns)
    if max(map(len, lines)) > width:
        # Swept keys by their last part (model.optimizer.weight_decay -> weight_decay), training and
        # evaluation columns in two tables.
        short = {k: k.rsplit(".", 1)[-1] for k in result.keys}
        if len(set(short.values())) < len(short):
            short = {k: k for k in result.keys}
        rows = [{**r, **{short[k]: r.get(k) for k in result.keys}} for r in result.rows]
        head = ["job", *short.values()]
        status = ["status"] if any(r["status"] != "ok" for r in rows) else []  # all ok: said once below
        lines = _text_table(rows, [*head, *status, *TRAINING_COLUMNS])
        if not status:
            lines.append(f"(all {len(rows)} jobs ok)")
        evaluated = [c for c in result.metric_columns if c not in TRAINING_COLUMNS]
        if evaluated:
            lines += ["", *_text_table(rows, [*head, *evaluated])]
    lines = [ln[:width] for ln in lines]
    if result.baseline:
        lines.append("real vs real: " + ", ".join(f"{k} {cell(v)}" for k, v in result.baseline.items()))
    for r in result.rows:
        if r["reason"]:
            lines.append(f"{r['job']} {r['status']}: {r['reason']}"[:width])
    return "\n".join(lines)


def markdown(result: Comparison) -> str:
    lines = markdown_table([*result.columns, "reason"], result.rows)
    if result.baseline:
        lines += [
            "",
            "Real vs real (the floor of the sample metrics): "
            + ", ".join(f"{k} {cell(v)}" for k, v in result.baseline.items()),
        ]
    return "\n".join(lines) + "\n"

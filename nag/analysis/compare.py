"""Comparing the jobs of a sweep (the body of ``python -m nag.compare``).

One row per job: the swept keys (only those that vary), its status, its final metrics from ``metrics.json`` and,
with ``evaluate=True``, the evaluation of its best checkpoint by the same code as ``nag.evaluate`` against one
shared real baseline. Written as ``summary.csv`` / ``summary.md``, a table of sample grids (``samples.png``) and
a metric against the numeric swept key (``<metric>_vs_<key>.png``).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from nag.analysis import plots
from nag.analysis.evaluation import RealImages, evaluate_reconstruction, evaluate_sampling
from nag.analysis.runs import Run, discover, override_values, swept_keys
from nag.artifacts import atomic_file, write_json_atomic
from nag.errors import UserInputError
from nag.figures import image_grid
from nag.priors import fixed_draw
from nag.trusted import build_stored

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
N_GRID = 16  # samples per job in samples.png (a 4 x 4 grid)


@dataclass
class Comparison:
    """The table (one dict per job), its columns, and the figures written."""

    rows: list[dict[str, Any]]
    keys: list[str]
    metric_columns: list[str]
    baseline: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return ["job", *self.keys, "status", *self.metric_columns]


def compare(
    root: Path,
    out: Path | None = None,
    evaluate: bool = False,
    metric: str | None = None,
    n_eval: int = 500,
    n_samples: int = 500,
    device: str = "auto",
    seed: int = 0,
) -> Comparison:
    """Compare every run under ``root`` and write the results into ``out`` (default ``<root>/compare``)."""
    runs = discover(root)
    if not runs:
        raise UserInputError(
            f"no training runs under {root} (a run dir holds .hydra/config.yaml); give a sweep dir such as "
            "multirun/<date>/<time>, a run dir, or a folder above them."
        )
    metric = metric or ("sample_swd" if evaluate else "latent_mmd")
    allowed = [*TRAINING_COLUMNS, *(EVALUATION_COLUMNS if evaluate else ())]
    if metric not in allowed:
        raise UserInputError(f"--metric {metric} is not a column; choose one of {allowed}"
                             f"{'' if evaluate else ' (or add --evaluate for the sample metrics)'}.")  # fmt: skip
    out = out or root / "compare"
    keys = swept_keys(runs)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    rows = [_row(run, root, keys) for run in runs]
    grids: list[Tensor | None] = [None] * len(runs)
    metric_columns = list(TRAINING_COLUMNS)
    baseline: dict[str, float] = {}
    if evaluate:
        baseline = _evaluate(runs, rows, grids, n_eval, n_samples, device, seed)
        metric_columns += list(EVALUATION_COLUMNS)
    else:
        for i, run in enumerate(runs):
            if run.best_ckpt is not None:
                model = run.load(device)
                with torch.no_grad():
                    z = fixed_draw(model.prior, N_GRID, seed).to(model.device)
                    grids[i] = image_grid(model.decode(z).float().cpu(), nrow=4)
    result = Comparison(rows, keys, metric_columns, baseline)
    _write(result, grids, out, metric)
    return result


def _row(run: Run, root: Path, keys: list[str]) -> dict[str, Any]:
    values = override_values(run.overrides)
    row: dict[str, Any] = {"job": str(run.path.relative_to(root)) if run.path != root else run.path.name}
    row.update({k: values.get(k, "") for k in keys})
    row["status"] = run.status
    for column, name in TRAINING_COLUMNS.items():
        value = (run.metrics or {}).get(name)
        row[column] = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
    row["reason"] = run.reason
    return row


def _evaluate(
    runs: list[Run], rows: list[dict[str, Any]], grids: list[Tensor | None], n_eval: int, n_samples: int,
    device: str, seed: int,
) -> dict[str, float]:  # fmt: skip
    """Evaluate each finished job's best checkpoint against one shared real baseline."""
    done = [i for i, run in enumerate(runs) if run.status == "ok" and run.best_ckpt is not None]
    if not done:
        raise UserInputError("--evaluate: no job finished with a checkpoint to evaluate.")
    datas = {i: runs[i].cfg.data for i in done if runs[i].cfg is not None and "data" in runs[i].cfg}
    plain = {i: OmegaConf.to_container(d, resolve=False) for i, d in datas.items()}
    first = done[0]
    if first not in datas or any(p != plain[first] for p in plain.values()):
        raise UserInputError(
            "--evaluate compares every job against one real baseline, but the jobs were trained on different data "
            "(or a job has no .hydra/config.yaml); compare them without --evaluate, or one data setting at a time."
        )
    data = build_stored(datas[first], f"{runs[first].path}/.hydra/config.yaml data")
    real = RealImages.load(data, n_eval=n_eval, n_fit=0)
    baseline = real.baseline(seed)
    for i in done:
        model = runs[i].load(device)
        rec = evaluate_reconstruction(model, real, model.prior, seed)
        gen = evaluate_sampling(model, real, model.prior, None, n_samples, probes=(), seed=seed)
        metrics = {**rec.metrics, **gen.metrics}
        for column, (section, key) in EVALUATION_COLUMNS.items():
            rows[i][column] = float(metrics[section][key])
        grids[i] = image_grid(gen.samples[:N_GRID], nrow=4) if gen.samples is not None else None
        log.info("evaluated %s", runs[i].path)
    return {"sample_swd": baseline["swd_mean"], "diversity": baseline["diversity"]}


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def _text_table(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    cells = [[_fmt(r.get(c), digits=3) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    return [ln.rstrip() for ln in lines + ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                                           for row in cells]]  # fmt: skip


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
        lines.append("real vs real: " + ", ".join(f"{k} {_fmt(v)}" for k, v in result.baseline.items()))
    for r in result.rows:
        if r["reason"]:
            lines.append(f"{r['job']} failed: {r['reason']}"[:width])
    return "\n".join(lines)


def markdown(result: Comparison) -> str:
    cols = [*result.columns, "reason"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |" for r in result.rows]
    if result.baseline:
        lines += ["", "Real vs real (the floor of the sample metrics): "
                  + ", ".join(f"{k} {_fmt(v)}" for k, v in result.baseline.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


def _numeric(values: list[Any]) -> bool:
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return True


def _write(result: Comparison, grids: list[Tensor | None], out: Path, metric: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cols = [*result.columns, "reason"]
    with atomic_file(out / "summary.csv") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: _fmt(r.get(c)) for c in cols} for r in result.rows)
    with atomic_file(out / "summary.md") as f:
        f.write(markdown(result))
    write_json_atomic(out / "summary.json", {"rows": result.rows, "baseline": result.baseline})
    labels = [{k: str(r.get(k, "")) for k in result.keys} for r in result.rows]
    notes = [f"{r['status']}: {r['reason']}"[:60] if r["reason"] else r["status"] for r in result.rows]
    plots.sample_table(grids, labels, result.keys, notes, out / "samples.png")
    result.files += [out / "summary.csv", out / "summary.md", out / "samples.png"]
    numeric = [k for k in result.keys if _numeric([r.get(k) for r in result.rows if r.get(k) != ""])]
    if numeric:
        key = numeric[0]
        safe = re.sub(r"[^\w.=-]", "_", f"{metric}_vs_{key}")
        plots.metric_vs_key(result.rows, metric, key, [k for k in result.keys if k != key], out / f"{safe}.png")
        result.files.append(out / f"{safe}.png")
    else:
        log.info("no numeric swept key: no %s plot", metric)

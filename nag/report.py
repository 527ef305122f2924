"""``python -m nag.report <run or sweep dir> [--out DIR]``: reproduce the lab report.

Finds the three runs of the report among the training runs under the directory (the plain autoencoder, the
model matched to N(0, 2) and the one matched to N(−3, 2), e.g. from
``python -m nag.train -m experiment=report_plain,report_mean0,report_mean-3``), evaluates them, regenerates
the report's figures and writes ``report.md`` with, for each of its six findings, the measured numbers and
whether they support it. What is measured and written is :mod:`nag.analysis.report`'s; finding the runs,
reading them and writing the report is done here.

Examples:
  python -m nag.train -m experiment=report_plain,report_mean0,report_mean-3   # the three runs, ~6 min on 2 cores
  python -m nag.report multirun/2026-11-28/10-00-00                          # -> <sweep>/report/report.md
  python -m nag.report multirun/2026-11-28/10-00-00 --out docs/figures/report --palette   # the README's
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nag.config.console import quiet_third_party
from nag.config.errors import reported_as_exit
from nag.config.fid_flags import add_fid_arguments, fid_options

log = logging.getLogger(__name__)


def build_report(
    root: Path,
    out: Path,
    n_eval: int = 500,
    n_samples: int = 500,
    seed: int = 0,
    palette: bool = False,
    fid: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate the three runs under ``root``; write figures (256-colour PNGs with ``palette``), ``metrics.json`` and
    ``report.md`` into ``out``."""
    from nag.analysis.attributes import load_or_train_classifier
    from nag.analysis.evaluation import RealImages
    from nag.analysis.findings import assess
    from nag.analysis.measures import fidelity_rows
    from nag.analysis.report import describe_runs, evaluate_runs, find_runs, render_markdown
    from nag.analysis.runs import load_data
    from nag.io.output import OutputDir
    from nag.metrics.fidelity import FidSetup
    from nag.model.inference import resolve_device
    from nag.training.figures import png_bytes

    start = time.perf_counter()
    runs = find_runs(root)
    rows = describe_runs(runs)  # every stored config read and checked before any evaluation
    data = load_data(runs["mean0"])
    out_dir = OutputDir(out, "the report folder")
    real = RealImages.load(data, n_eval=n_eval, n_fit=5000)
    classifier = load_or_train_classifier(data, data.cache_dir) if real.names else None
    fid_setup = FidSetup.load(data, real, fid or {}, resolve_device("auto"), seed)
    ev = evaluate_runs(runs, real, n_samples, seed, classifier, fid_setup)
    for name, grid in ev.figures.items():
        out_dir.write_bytes(f"{name}.png", png_bytes(grid, palette))
    findings = assess(ev.measures)
    seconds = time.perf_counter() - start
    metrics = {
        "runs": {role: str(run.path) for role, run in runs.items()},
        "measures": asdict(ev.measures),  # what the findings read (nag.analysis.measures.measures_from_json)
        "findings": [asdict(f) for f in findings],
        "details": ev.details,  # every number measured
        "seconds": seconds,
    }
    out_dir.write_json("metrics.json", metrics)
    out_dir.write_text("report.md", render_markdown(rows, ev.measures, findings, seconds, fidelity_rows(ev.details)))
    log.info("report written to %s in %.0f s", out, seconds)
    return metrics


def parser() -> argparse.ArgumentParser:
    """The command line (the README's commands are checked against it)."""
    p = argparse.ArgumentParser(
        prog="python -m nag.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("root", type=Path, help="a run dir, a sweep dir (multirun/<date>/<time>) or a folder above them")
    p.add_argument("--out", type=Path, help="where to write report.md and the figures (default: <root>/report)")
    p.add_argument("--n-eval", type=int, default=500, help="test images used as the real reference")
    p.add_argument("--n-samples", type=int, default=500, help="generated images per sampling setting")
    p.add_argument("--palette", action="store_true", help="256-colour PNGs, a third of the size (the README's figures)")
    add_fid_arguments(p)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_third_party()
    with reported_as_exit():
        build_report(
            args.root,
            args.out or args.root / "report",
            args.n_eval,
            args.n_samples,
            palette=args.palette,
            fid=fid_options(args),
        )


if __name__ == "__main__":
    main()

"""``python -m nag.report <run or sweep dir> [--out DIR]``: reproduce the lab report.

Finds the three runs of the report among the training runs under the directory (the plain autoencoder, the
model matched to N(0, 2) and the one matched to N(−3, 2), e.g. from
``python -m nag.train -m experiment=report_plain,report_mean0,report_mean-3``), evaluates them, regenerates
the report's figures and writes ``report.md`` with, for each of its six findings, the measured numbers and
whether they support it. The work is done by :mod:`nag.analysis.report`.

Examples:
  python -m nag.train -m experiment=report_plain,report_mean0,report_mean-3   # the three runs, ~6 min on 2 cores
  python -m nag.report multirun/2026-11-28/10-00-00                          # -> <sweep>/report/report.md
  python -m nag.report multirun/2026-11-28/10-00-00 --out notebooks/figures/report --palette   # README's
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nag.config.console import quiet_third_party
from nag.config.errors import reported_as_exit


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
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_third_party()
    with reported_as_exit():
        from nag.analysis.report import build_report

        build_report(args.root, args.out or args.root / "report", args.n_eval, args.n_samples, palette=args.palette)


if __name__ == "__main__":
    main()

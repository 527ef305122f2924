"""``python -m nag.compare <sweep dir> [--evaluate] [--metric M]``: compare the jobs of a sweep in one command.

Finds every job under the directory (a sweep dir ``multirun/<date>/<time>``, a run dir, or a folder of runs) and
writes ``<dir>/compare/``: ``summary.csv`` and ``summary.md`` (one row per job: the swept keys, status, final
metrics; with ``--evaluate`` also sample SWD, diversity, PSNR and SSIM of each best checkpoint against one real
baseline), ``samples.png`` (each job's prior samples, a table when two keys are swept) and
``<metric>_vs_<key>.png``. Failed jobs are rows with their reason. The work is done by :mod:`nag.analysis.compare`.

Examples:
  python -m nag.train -m experiment=quickstart prior.mean=-3,0,3 matching=none,mmd_imq trainer.max_epochs=1
  python -m nag.compare multirun/2026-11-28/10-00-00
  python -m nag.compare multirun/2026-11-28/10-00-00 --evaluate --metric diversity
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
        prog="python -m nag.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("root", type=Path, help="a sweep dir (multirun/<date>/<time>), a run dir or a folder of runs")
    p.add_argument("--evaluate", action="store_true", help="evaluate each job's best checkpoint (sample SWD, ...)")
    p.add_argument("--metric", help="the plotted column (default: sample_swd with --evaluate, else latent_mmd)")
    p.add_argument("--out", type=Path, help="output folder (default: <root>/compare)")
    p.add_argument("--n-eval", type=int, default=500, help="real test images of the shared baseline (--evaluate)")
    p.add_argument("--n-samples", type=int, default=500, help="generated images per job (--evaluate)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_third_party()
    with reported_as_exit():
        from nag.analysis.compare import compare, table

        result = compare(args.root, args.out, args.evaluate, args.metric, args.n_eval, args.n_samples, args.device)
        print(table(result))
        print("written: " + ", ".join(str(f) for f in result.files))


if __name__ == "__main__":
    main()

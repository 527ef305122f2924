"""``python -m nag.bench``: runs the measurements of :mod:`nag.bench`, prints one table, writes JSON."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import nag.bench
from nag.bench.parts import DISTANCES
from nag.config.console import quiet_third_party
from nag.io.output import write_json_atomic

PARTS = ("startup", "loop", "matching", "model", "data", "fid", "gpu", "evaluation", "quickstart")

#: The report's CelebA run: 162,770 training images, 63 epochs.
CELEBA_TRAIN, REPORT_EPOCHS = 162_770, 63

#: (section, key) -> (label, format, target, whether the value must be >= (True) or <= (False) the target)
TARGETS: dict[tuple[str, str], tuple[str, str, float | None, bool]] = {
    ("startup", "bad_config_s"): ("bad config value reported after (s)", "{:.2f}", 3.0, False),
    ("loop", "plain_images_per_s"): ("plain PyTorch loop, images/s", "{:,.0f}", None, True),
    ("loop", "nag_images_per_s"): ("nag.train's Trainer, images/s", "{:,.0f}", None, True),
    ("loop", "ratio"): ("nag / plain loop", "{:.3f}", 0.97, True),
    ("loop", "cpu_ratio"): ("nag / plain loop, per CPU-second", "{:.3f}", 0.97, True),
    ("loop", "epoch_s"): ("full epoch incl. validation and figures (s)", "{:.2f}", None, True),
    ("loop", "validation_s"): ("  of which validation + figures (s)", "{:.2f}", None, True),
    ("loop", "callbacks_share"): ("callbacks' + loggers' share of a full epoch", "{:.1%}", None, False),
    ("matching", "step_s"): ("training step, default model, 64 px, batch 128 (s)", "{:.3f}", None, True),
    **{("matching", d): (f"{d} share of a step (batch 128, d 64)", "{:.2%}", 0.05, False) for d in DISTANCES},
    ("model", "gflops_per_image"): ("training GFLOPs per image, 64 px", "{:.3f}", None, True),
    ("model", "bytes_per_image"): ("input bytes per image (uint8, 64 px)", "{:,.0f}", None, True),
    ("model", "images_per_s"): ("training images/s of the default model, 64 px", "{:,.0f}", None, True),
    ("model", "report_run_s"): ("projected 63 CelebA epochs on this device (s)", "{:,.0f}", None, False),
    ("data", "speedup"): ("cached loader / per-epoch JPEG pipeline", "{:.0f}x", 20.0, True),
    ("data", "loader_share"): ("loader share of a training step, 64 px", "{:.2%}", 0.05, False),
    ("fid", "images_per_s"): ("FID Inception features, images/s (batch 64)", "{:,.1f}", None, True),
    ("fid", "cuda_images_per_s"): ("  the same on CUDA", "{:,.1f}", None, True),
    ("fid", "fid_10k_s"): ("  projected FID of 10,000 samples (s)", "{:,.0f}", None, False),
    ("gpu", "report_ae_fp32_images_per_s"): ("GPU: report AE 64 px, fp32, images/s", "{:,.0f}", None, True),
    ("gpu", "report_ae_bf16_images_per_s"): ("GPU: report AE, bf16 + channels-last, images/s", "{:,.0f}", None, True),
    ("gpu", "report_ae_bf16_compiled_images_per_s"): (
        "GPU: report AE, bf16 compiled, images/s",
        "{:,.0f}",
        None,
        True,
    ),
    ("gpu", "report_ae_bf16_63_epochs_s"): ("GPU: 63 CelebA epochs, bf16 (s)", "{:,.0f}", 300.0, False),
    ("gpu", "report_ae_bf16_compiled_63_epochs_s"): (
        "GPU: 63 CelebA epochs, bf16 compiled (s)",
        "{:,.0f}",
        300.0,
        False,
    ),
    ("gpu", "divergence_check_share"): (
        "GPU: the divergence check's read-back, share of a step",
        "{:.2%}",
        0.02,
        False,
    ),
    ("gpu", "wae_celeba_bf16_images_per_s"): ("GPU: WAE/RAE CelebA net, bf16, images/s", "{:,.0f}", None, True),
    ("evaluation", "evaluate_s"): ("nag.evaluate of one checkpoint (s)", "{:.1f}", None, False),
    ("evaluation", "report_s"): ("nag.report of the three runs (s)", "{:.1f}", None, False),
    ("quickstart", "seconds"): ("quickstart wall time (s)", "{:.0f}", 120.0, False),
    ("quickstart", "test_mmd"): ("quickstart held-out MMD", "{:.4f}", 0.037, False),
}


def _settings(quick: bool) -> dict[str, Any]:
    """What each part runs on: the real settings, or tiny ones that exercise the same code in seconds."""
    if not quick:
        return {
            "loop": ["experiment=quickstart", "data.n_train=10000"],
            "loop_epochs": 2,
            "loop_repeats": 5,
            "image_size": 64,
            "repeats": 5,
            "data": {"n_images": 3000, "image_size": 64, "crop": 148, "batch_size": 64, "steps": 60},
            "train": ["data=synthetic", "data.n_train=5000", "trainer.max_epochs=1"],
            "evaluate": ["n_eval=1000", "n_samples=1000"],
            "report": ["--n-eval", "1000", "--n-samples", "1000"],
            "quickstart": [],
            "fid_batch": 64,
        }
    tiny = ["debug=tiny", "trainer.enable_model_summary=false", "trainer.num_sanity_val_steps=0"]
    return {
        "loop": ["experiment=quickstart", *tiny, "data.n_train=128", "data.n_val=32", "data.n_test=32"],
        "loop_epochs": 2,
        "loop_repeats": 1,
        "image_size": 16,
        "repeats": 1,
        "data": {"n_images": 120, "image_size": 16, "crop": 100, "batch_size": 16, "steps": 3},
        "train": [*tiny, "data.n_train=128", "trainer.max_epochs=1"],
        "evaluate": ["n_eval=32", "n_samples=32", "n_fit=64", "attributes.enabled=false"],
        "report": ["--n-eval", "32", "--n-samples", "32"],
        "quickstart": [*tiny, "data.n_train=128", "trainer.max_epochs=1"],
        "fid_batch": 4,
    }


def run(parts: list[str], quick: bool, device: torch.device, workdir: Path, data_workers: int) -> dict[str, Any]:
    from nag.bench import data, loop
    from nag.bench import parts as p

    s = _settings(quick)
    gpu = ["trainer=gpu", "data.on_device=true"] if device.type == "cuda" else ["trainer=cpu"]
    results: dict[str, Any] = {"device": device.type, "quick": quick, "cpu_threads": torch.get_num_threads()}
    for part in parts:
        print(f"[bench] {part} ...", file=sys.stderr, flush=True)
        out = workdir / part
        out.mkdir()
        if part == "startup":
            results[part] = {"bad_config_s": p.first_message_seconds(out)}
        elif part == "loop":
            r = loop.measure([*s["loop"], *gpu], out, epochs=s["loop_epochs"], repeats=s["loop_repeats"])
            results[part] = {**vars(r), "callbacks_share": r.callbacks_share}
        elif part == "matching":
            results[part] = p.matching_shares(out, s["image_size"], repeats=s["repeats"], device=device)
        elif part == "model":
            size, batch = s["image_size"], 64
            model = loop.default_model(out, size, matching="mmd_imq")
            step = p.step_seconds(model, batch, size, s["repeats"], device)
            ips = batch / step
            results[part] = {
                "image_size": size,
                "gflops_per_image": p.flops_per_image(out, size) / 1e9,
                "bytes_per_image": 3 * size * size,
                "images_per_s": ips,
                "report_run_s": REPORT_EPOCHS * CELEBA_TRAIN / ips,
            }
        elif part == "data":
            results[part] = data.measure(out, workers=data_workers, **s["data"])
        elif part == "gpu":
            from nag.bench import gpu

            results[part] = gpu.measure(out)
        elif part == "fid":
            results[part] = p.fid_cost(out, s["repeats"], batch=s["fid_batch"])
        elif part == "evaluation":
            results[part] = p.evaluation_and_report(out, s["train"], s["evaluate"], s["report"])
        elif part == "quickstart":
            results[part] = p.quickstart(out, s["quickstart"])
    return results


def table(results: dict[str, Any]) -> str:
    """The results as an aligned table: measurement, value, target, met (not judged for ``--quick``, whose tiny
    settings the targets do not describe)."""
    rows = [("measurement", "value", "target", "")]
    for (section, key), (label, fmt, target, at_least) in TARGETS.items():
        if key not in results.get(section, {}):
            continue
        value = results[section][key]
        goal, met = "", ""
        if target is not None:
            goal = ("≥ " if at_least else "≤ ") + fmt.format(target)
            met = "ok" if (value >= target if at_least else value <= target) else "MISSED"
            met = "(quick)" if results.get("quick") else met
        rows.append((label, fmt.format(value), goal, met))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows)


def build_parser() -> argparse.ArgumentParser:
    """The command line (the README's commands are checked against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m nag.bench", description=nag.bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings: every field in about a minute")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        metavar="PART",
        help=f"run only these parts ({', '.join(PARTS)})",
    )
    parser.add_argument(
        "--data-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="DataLoader workers of the JPEG baseline (default: one per core)",
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_third_party()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA GPU that torch can use (torch.cuda.is_available()).")
    with tempfile.TemporaryDirectory(prefix="nag-bench-") as tmp:
        results = run(args.only, args.quick, torch.device(args.device), Path(tmp), args.data_workers)
    if args.quick:
        print("--quick: 16-px images and a few hundred of them; only a full run compares with the targets.")
    print(table(results))
    if args.out:
        write_json_atomic(args.out, results)
    return results

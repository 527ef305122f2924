"""Benchmarks: ``python -m nag.bench [--quick] [--out bench.json] [--device cpu|cuda]``.

Measures in one run, as ratios where the machine's speed cancels out (absolute times count only on a GPU):

- **loop**: images/s of a training epoch through ``nag.train``'s own Trainer (progress bar, logging,
  checkpointing, every default callback) vs a plain PyTorch loop over the same nets, batch, loss, optimizer
  and cached data (quickstart's data and model); the callbacks' share of a full epoch (validation and figures
  included). Target: ratio >= 0.97.
- **matching**: each distance of ``conf/matching/`` at batch 128, d = 64, as a share of a training
  step of the default model at 64 px. Target <= 5 %.
- **model**: FLOPs and input bytes per training image at 64 px; with ``--device cuda``, images/s on the GPU and
  the projected time of the report's 63 CelebA epochs.
- **data**: the cached CelebA loader vs torchvision's per-epoch JPEG pipeline on the same generated JPEGs
  (target >= 20x), and the loader's share of a training step (target <= 5 %).
- **evaluation**: seconds of ``nag.evaluate`` on 1,000 images and of ``nag.report`` on the report's three runs.
- **quickstart**: wall time of ``python -m nag.train experiment=quickstart`` and its held-out MMD. Targets:
  <= 120 s on 2 CPU cores, MMD <= 0.037.
- **startup**: seconds until a bad config value is reported. Target <= 3 s.

Examples:
  python -m nag.bench                       # everything, about 10 minutes on 2 CPU cores
  python -m nag.bench --quick --out b.json  # every field on tiny settings, in about a minute
  python -m nag.bench --device cuda --only model loop   # the GPU projection
"""

from nag.bench.cli import main

__all__ = ["main"]

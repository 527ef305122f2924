"""Benchmarks: ``python -m nag.bench [--n-images N] [--image-size S] [--root DIR]``.

Measures, in one run and on the same JPEGs:

1. the usual approach — torchvision's ``CelebA`` dataset + ``CenterCrop/Resize/ToTensor`` through a
   ``DataLoader`` with a worker per core, decoding every JPEG every epoch;
2. nag's CelebA data module after its one-time uint8 cache is built (build time reported separately);
3. the loader's share of a training epoch: the report's autoencoder trained on the cached loader, time spent
   waiting for batches vs. total.

Without ``--root`` it writes a CelebA-like copy (178 × 218 JPEGs in torchvision's layout) to a temporary
folder. Targets (issue 3): ratio 2 / 1 ≥ 20×, loader share ≤ 5 % at 64 px.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CelebA as TorchvisionCelebA

from nag import CONF_DIR
from nag.data.celeba import CelebA
from nag.data.faces import render, sample_params
from nag.module import NAGModule

CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba


def write_fake_celeba(root: Path, n: int, seed: int = 0) -> None:
    """``n`` face JPEGs of CelebA's size, plus all five metadata files torchvision's loader reads."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for start in range(0, n, 256):
        faces = render([sample_params(seed, 0, i) for i in range(start, min(start + 256, n))], 64)
        for j, face in enumerate(faces):
            big = np.asarray(Image.fromarray(face).resize(CELEBA_SIZE, Image.BICUBIC), dtype=np.float32)
            big += rng.normal(0, 6, big.shape)  # photo-like texture, so the JPEGs are of realistic size
            Image.fromarray(big.clip(0, 255).astype(np.uint8)).save(folder / names[start + j], quality=90)
    base = root / "celeba"
    attrs = [f"A{k}" for k in range(40)]
    split = np.searchsorted([0.8 * n, 0.9 * n], np.arange(n), side="right")  # 80/10/10 train/valid/test
    (base / "list_eval_partition.txt").write_text("".join(f"{nm} {s}\n" for nm, s in zip(names, split, strict=True)))
    (base / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(attrs) + "\n" + "".join(f"{nm} " + " ".join(["-1"] * 40) + "\n" for nm in names)
    )
    (base / "identity_CelebA.txt").write_text("".join(f"{nm} 1\n" for nm in names))
    (base / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{nm} 0 0 1 1\n" for nm in names)
    )
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\n" + " ".join(f"p{k}" for k in range(10)) + "\n" + "".join(f"{nm}" + " 0" * 10 + "\n" for nm in names)
    )


class _UncheckedCelebA(TorchvisionCelebA):
    """torchvision's CelebA, minus the MD5 check of the metadata files (ours are generated)."""

    def _check_integrity(self) -> bool:
        return (Path(self.root) / self.base_folder / "img_align_celeba").is_dir()


def images_per_second(loader: DataLoader, epochs: int = 1) -> float:
    n, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            n += x.shape[0]
    return n / (time.perf_counter() - start)


def report_model(image_size: int) -> NAGModule:
    """The default model of ``conf/`` (the report's autoencoder, WAE-MMD to N(−3, 2)) at ``image_size``."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.image_size={image_size}", "prior=normal_mean-3", "matching=mmd_imq"])
    return instantiate(cfg.model, prior=cfg.prior, matching=cfg.matching)


def loader_share(dm: CelebA, image_size: int, steps: int) -> tuple[float, float]:
    """Train the report AE (WAE-MMD) for ``steps`` batches; return (loader share of the time, s per step)."""
    torch.manual_seed(0)
    model = report_model(image_size)
    opt = model.configure_optimizers()
    wait = total = 0.0
    done = 0
    while done < steps:
        it = iter(dm.train_dataloader())
        while done < steps:
            t0 = time.perf_counter()
            batch = next(it, None)
            t1 = time.perf_counter()
            if batch is None:
                break
            loss = model.loss_terms(batch[0])["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            t2 = time.perf_counter()
            wait, total, done = wait + (t1 - t0), total + (t2 - t0), done + 1
    return wait / total, total / steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-images", type=int, default=3000, help="images in the generated copy (default 3000)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--crop", type=int, default=148)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers of the baseline")
    p.add_argument("--steps", type=int, default=60, help="training steps for the loader-share measurement")
    p.add_argument("--root", type=Path, help="an existing torchvision-layout CelebA instead of a generated one")
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nag-bench-") as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "data"
            t = time.perf_counter()
            write_fake_celeba(root, args.n_images)
            print(f"wrote {args.n_images} JPEGs of {CELEBA_SIZE[0]}x{CELEBA_SIZE[1]} in {time.perf_counter() - t:.1f}s")

        tf = transforms.Compose(
            [
                transforms.CenterCrop(args.crop),
                transforms.Resize(args.image_size, antialias=True),
                transforms.ToTensor(),
            ]
        )
        baseline_ds = _UncheckedCelebA(str(root), split="train", target_type="attr", transform=tf)
        baseline = DataLoader(baseline_ds, args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True)
        jpeg_ips = images_per_second(baseline)
        print(f"torchvision CelebA + transforms, {args.workers} workers: {jpeg_ips:,.0f} images/s")

        dm = CelebA(root=str(root), crop=args.crop, image_size=args.image_size, batch_size=args.batch_size,
                    cache_dir=str(Path(tmp) / "cache"))  # fmt: skip
        t = time.perf_counter()
        dm.prepare_data()
        build_s = time.perf_counter() - t
        dm.setup()
        cached_ips = images_per_second(dm.train_dataloader(), epochs=3)
        share, step_s = loader_share(dm, args.image_size, args.steps)

    n_train = len(baseline_ds)
    results = {
        "images": float(n_train),
        "image_size": float(args.image_size),
        "jpeg_images_per_s": jpeg_ips,
        "cache_build_s": build_s,
        "cached_images_per_s": cached_ips,
        "speedup": cached_ips / jpeg_ips,
        "loader_share": share,
        "train_step_s": step_s,
    }
    print(f"nag CelebA cache: built in {build_s:.1f}s, then {cached_ips:,.0f} images/s "
          f"({results['speedup']:.0f}x the JPEG pipeline; target >= 20x)")  # fmt: skip
    print(f"loader share of training time at {args.image_size}px: {share:.2%} (target <= 5%), "
          f"{step_s * 1000:.0f} ms per step of {args.batch_size}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

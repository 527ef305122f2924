"""The data benchmark: nag's cached uint8 loader vs the usual per-epoch JPEG pipeline, on the same JPEGs.

1. the usual approach — torchvision's ``CelebA`` dataset + ``CenterCrop/Resize/ToTensor`` through a
   ``DataLoader`` with a worker per core, decoding every JPEG every epoch;
2. nag's CelebA data module after its one-time uint8 cache is built (build time reported separately);
3. the loader's share of training: the report's autoencoder (WAE-MMD) trained on the cached loader, time spent
   waiting for batches vs. total.

Without a ``root`` it writes a CelebA-like copy (178 × 218 JPEGs in torchvision's layout). Targets: ratio
2 / 1 >= 20x, loader share <= 5 % at 64 px.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CelebA as TorchvisionCelebA

from nag.bench.loop import default_model
from nag.data.celeba import CelebA
from nag.data.faces import render, sample_params

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


def loader_share(dm: CelebA, workdir: Path, image_size: int, steps: int) -> tuple[float, float]:
    """Train the report AE (WAE-MMD) for ``steps`` batches; return (loader share of the time, s per step)."""
    torch.manual_seed(0)
    model = default_model(workdir, image_size, matching="mmd_imq")
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


def measure(
    workdir: Path,
    n_images: int,
    image_size: int,
    crop: int,
    batch_size: int,
    workers: int,
    steps: int,
    root: Path | None = None,
) -> dict[str, float]:
    """The cached loader vs torchvision's JPEG pipeline on the same CelebA-layout JPEGs (generated under
    ``workdir`` unless ``root`` is given), and the loader's share of training steps."""
    if root is None:
        root = workdir / "data"
        write_fake_celeba(root, n_images)
    tf = transforms.Compose(
        [transforms.CenterCrop(crop), transforms.Resize(image_size, antialias=True), transforms.ToTensor()]
    )
    baseline_ds = _UncheckedCelebA(str(root), split="train", target_type="attr", transform=tf)
    baseline = DataLoader(baseline_ds, batch_size, shuffle=True, num_workers=workers, drop_last=True)
    jpeg_ips = images_per_second(baseline)

    dm = CelebA(
        root=str(root), crop=crop, image_size=image_size, batch_size=batch_size, cache_dir=str(workdir / "cache")
    )
    t = time.perf_counter()
    dm.prepare_data()
    build_s = time.perf_counter() - t
    dm.setup()
    cached_ips = images_per_second(dm.train_dataloader(), epochs=3)
    share, step_s = loader_share(dm, workdir, image_size, steps)
    return {
        "images": float(len(baseline_ds)),
        "jpeg_workers": float(workers),
        "jpeg_images_per_s": jpeg_ips,
        "cache_build_s": build_s,
        "cached_images_per_s": cached_ips,
        "speedup": cached_ips / jpeg_ips,
        "loader_share": share,
        "train_step_s": step_s,
    }

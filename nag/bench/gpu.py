"""``python -m nag.bench --device cuda --only gpu``: the GPU path's variants, measured (the prepared GPU check,
``scripts/gpu_check.sh``, runs it with the GPU test tier).

At 64 px, batch 128: the report's autoencoder in float32, in bf16 autocast (channels-last), and bf16 compiled; the
WAE/RAE CelebA network in bf16; the per-step cost of the divergence check's host read-back (one ``.item()`` per
step, a synchronisation on a GPU); and each variant's projection to 63 epochs of CelebA's 162,770 images.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

CELEBA_TRAIN, REPORT_EPOCHS = 162_770, 63


def _model(workdir: Path, extra: list[str]) -> Any:
    from nag.config.compose import compose_run
    from nag.training.build import build_model

    cfg = compose_run(["data.image_size=64", "matching=mmd_imq", *extra], workdir)
    return build_model(cfg)


def _steps_per_s(model: Any, batch: int, bf16: bool, compiled: bool, read_back: bool, steps: int) -> float:
    """Training steps per second on CUDA after a warm-up (the compile included in the warm-up)."""
    device = torch.device("cuda")
    model.to(device).train()
    if bf16:
        model.to(memory_format=torch.channels_last)
    optimizer = model.configure_optimizers()
    loss_fn = torch.compile(model.loss_terms) if compiled else model.loss_terms
    x = torch.rand(batch, 3, 64, 64, device=device)
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if read_back:
            loss.detach().float().item()  # what the divergence check reads every step

    for _ in range(5 if not compiled else 15):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def measure(workdir: Path, batch: int = 128, steps: int = 50) -> dict[str, float]:
    if not torch.cuda.is_available():
        return {}
    out: dict[str, float] = {}
    variants = {"fp32": (False, False), "bf16": (True, False), "bf16_compiled": (True, True)}
    for name, (bf16, compiled) in variants.items():
        rate = _steps_per_s(_model(workdir, []), batch, bf16, compiled, read_back=True, steps=steps)
        out[f"report_ae_{name}_images_per_s"] = rate * batch
        out[f"report_ae_{name}_63_epochs_s"] = REPORT_EPOCHS * CELEBA_TRAIN / (rate * batch)
    without = _steps_per_s(_model(workdir, []), batch, True, False, read_back=False, steps=steps)
    with_check = out["report_ae_bf16_images_per_s"] / batch
    out["divergence_check_share"] = max(0.0, 1 - with_check / without)
    wae = _steps_per_s(_model(workdir, ["model=wae_celeba"]), batch, True, False, read_back=True, steps=steps)
    out["wae_celeba_bf16_images_per_s"] = wae * batch
    out["wae_celeba_bf16_63_epochs_s"] = REPORT_EPOCHS * CELEBA_TRAIN / (wae * batch)
    return out

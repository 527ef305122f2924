"""The benchmark's other measurements: the matching distances' share of a step, the model's cost per image, the
time a bad config takes to be reported, and the end-to-end commands (quickstart, evaluation, report)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from nag import CONF_DIR
from nag.bench.loop import default_model
from nag.runs.run_dir import RunDir

#: Every matching distance of the config tree (``conf/matching/``, the one list of them; ``none`` is no distance),
#: timed at the batch and code size of the report's CelebA runs.
DISTANCES = tuple(sorted(p.stem for p in (CONF_DIR / "matching").glob("*.yaml") if p.stem != "none"))


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_seconds(model: torch.nn.Module, batch: int, image_size: int, repeats: int, device: torch.device) -> float:
    """One training step (forward, loss, backward, optimizer) of ``model`` on a batch of ``batch`` images; on a GPU
    as ``trainer=gpu`` computes it (bf16 or float16 autocast, channels-last), on a CPU in float32."""
    model.to(device).train()
    optimizer = model.configure_optimizers()
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    dtype = None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(enabled=dtype is torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model.loss_terms(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return median_seconds(step, repeats, device)


def matching_shares(
    workdir: Path,
    image_size: int = 64,
    batch: int = 128,
    dim: int = 64,
    repeats: int = 5,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Each distance's forward + backward at ``batch`` codes of ``dim`` as a share of a training step of the
    default model (the report's autoencoder) at ``image_size``, plus that step's seconds."""
    device = device or torch.device("cpu")
    step = step_seconds(default_model(workdir, image_size, latent_dim=dim), batch, image_size, repeats, device)
    out = {"step_s": step}
    for name in DISTANCES:
        model = default_model(workdir, image_size, matching=name, latent_dim=dim).to(device)
        z = torch.randn(batch, dim, device=device, requires_grad=True)
        generator = torch.Generator().manual_seed(0)

        def distance(model=model, z=z, generator=generator) -> None:  # noqa: ANN001
            model.matching(z, model.prior, generator=generator).backward()

        seconds = median_seconds(distance, repeats * 4, device)
        out[name] = seconds / (step + seconds)
    return out


def flops_per_image(workdir: Path, image_size: int = 64) -> float:
    """Floating-point operations of one training image (forward and backward) of the default model."""
    model = default_model(workdir, image_size)
    x = torch.rand(8, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        model.loss_terms(x)["loss"].backward()
    return counter.get_total_flops() / 8


def first_message_seconds(cwd: Path) -> float:
    """Seconds from starting ``python -m nag.train`` with a bad value to its error message (and exit)."""
    start = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "nag.train", "data.batch_size=1"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    seconds = time.perf_counter() - start
    if r.returncode == 0 or "data.batch_size" not in r.stderr + r.stdout:
        raise RuntimeError(f"nag.train accepted data.batch_size=1 or did not name it:\n{r.stderr[-2000:]}")
    return seconds


def run_timed(module: str, args: list[str], cwd: Path) -> float:
    """Wall seconds of ``python -m <module> <args>`` in ``cwd``; a failure is raised with its message."""
    start = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    if r.returncode != 0:
        raise RuntimeError(f"python -m {module} {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - start


def quickstart(cwd: Path, extra: list[str]) -> dict[str, float]:
    """Wall time of ``python -m nag.train experiment=quickstart`` and the quality it reaches (held-out MMD between
    the test codes and the prior, and the test reconstruction error)."""
    run = cwd / "quickstart"
    seconds = run_timed("nag.train", ["experiment=quickstart", f"hydra.run.dir={run}", *extra], cwd)
    metrics = RunDir(run).metrics or {}
    return {"seconds": seconds, "test_mmd": metrics["test/matching"], "test_recon": metrics["test/recon"]}


def evaluation_and_report(
    cwd: Path, train_extra: list[str], eval_extra: list[str], report_extra: list[str]
) -> dict[str, float]:
    """Train the report's three runs (short: only the evaluation is timed), then time ``nag.evaluate`` of one
    checkpoint and ``nag.report`` of the three."""
    run_timed(
        "nag.train",
        [
            "-m",
            "experiment=report_plain,report_mean0,report_mean-3",
            "test=false",
            f"hydra.sweep.dir={cwd}/sweep",
            *train_extra,
        ],
        cwd,
    )
    sweep = cwd / "sweep"
    ckpt = RunDir(sweep / "1").best_ckpt
    evaluate_s = run_timed("nag.evaluate", [f"ckpt_path={ckpt}", f"hydra.run.dir={cwd}/eval", *eval_extra], cwd)
    report_s = run_timed("nag.report", [str(sweep), *report_extra], cwd)
    return {"evaluate_s": evaluate_s, "report_s": report_s}


def fid_cost(workdir: Path, repeats: int = 3, batch: int = 64) -> dict[str, float]:
    """Images/s of the FID Inception network (any input size: it resizes to 299 px) on the CPU, and on CUDA when
    there is one; the time 10,000 samples (and their 10,000 real references, cached after the first time) take.
    Weights as ``nag.evaluate`` finds them; without any, the same architecture with random weights (its speed)."""
    from nag.metrics.inception import InceptionFeatures, resolve_weights

    found = resolve_weights(None, workdir / "fid", download=False)
    out: dict[str, float] = {} if found is not None else {"random_weights": 1.0}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    x = torch.rand(batch, 3, 64, 64)
    for device in devices:
        if found is not None:
            features: Any = InceptionFeatures(found[0], found[1], device, batch_size=batch)
        else:  # no weights (the GPU machine, which cannot carry them): the same architecture, random weights
            import torch.nn.functional as F
            from torchvision.models import inception_v3

            net = inception_v3(weights=None, aux_logits=False, init_weights=False).eval().to(device)

            def features(images: torch.Tensor, net=net, device=device) -> torch.Tensor:  # noqa: ANN001
                with torch.no_grad():
                    return net(F.interpolate(images.to(device), size=(299, 299), mode="bilinear"))

        seconds = median_seconds(lambda f=features: f(x), repeats, device)
        out["images_per_s" if device.type == "cpu" else "cuda_images_per_s"] = batch / seconds
    fastest = max(v for k, v in out.items() if k.endswith("images_per_s"))
    out["fid_10k_s"] = 2 * 10_000 / fastest  # 10,000 samples and 10,000 real references (cached after the first)
    return out

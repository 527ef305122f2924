"""More than one process: the global-batch matching term and its gradient, DDP runs, sweeps on submitit."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from nag.config.resolvers import gpu_precision
from nag.training.module import NAGModule
from tests.helpers import TINY, run_module

B = 6  # codes per process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(hparams: dict) -> NAGModule:
    torch.manual_seed(0)
    model = NAGModule(**hparams)
    model.train()
    for m in model.modules():  # batch norm on its running statistics: per-process batch statistics (SyncBatchNorm
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):  # needs a GPU) would differ from 2B's anyway
            m.eval()
    return model


def _loss_and_grads(model: NAGModule, x: torch.Tensor) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    terms = model.loss_terms(x, generator=torch.Generator().manual_seed(7))  # the same prior draws everywhere
    model.zero_grad()
    terms["loss"].backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v) for k, v in terms.items()}, grads


def _rank(rank: int, world: int, port: int, hparams: dict, x: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model(hparams)
        terms, grads = _loss_and_grads(model, x[rank * B : (rank + 1) * B])
        for g in grads.values():  # what DDP does to the parameter gradients: average them over the processes
            dist.all_reduce(g)
            g /= world
        torch.save({"terms": terms, "grads": grads}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("matching", ["mmd_imq", "swd"])
def test_two_processes_with_b_each_equal_one_process_with_2b(compose_cfg, tmp_path: Path, matching: str) -> None:
    cfg = compose_cfg([*TINY, f"matching={matching}"])
    hparams = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if not k.startswith("_")}
    hparams |= {
        "prior": OmegaConf.to_container(cfg.prior, resolve=True),
        "matching": OmegaConf.to_container(cfg.matching, resolve=True),
    }
    x = torch.rand(2 * B, 3, 16, 16, generator=torch.Generator().manual_seed(1))

    single_terms, single_grads = _loss_and_grads(_model(hparams), x)
    mp.spawn(_rank, args=(2, _free_port(), hparams, x, str(tmp_path)), nprocs=2, join=True)

    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        # The matching term of each process is the distance of the global batch, not of its half.
        assert got["terms"]["matching"] == pytest.approx(single_terms["matching"], rel=1e-5, abs=1e-7)
        assert got["grads"].keys() == single_grads.keys()
        for name, g in single_grads.items():  # the gradient through the gather is the subtle part
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
    half = torch.load(tmp_path / "rank0.pt", weights_only=True)["terms"]["recon"]
    assert half != pytest.approx(single_terms["recon"]), "each process reconstructs its own half"


@pytest.mark.slow
def test_ddp_cpu_run_writes_one_run_dir_and_a_loadable_checkpoint(tmp_path: Path, cache_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = run_module("nag.train", [*TINY, "trainer=ddp_cpu", "trainer.max_epochs=2", "test=false"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = (tmp_path / "outputs").glob("*/*")
    assert [p.name for p in (tmp_path / "outputs").glob("*/*")] == [run.name], "one run dir for both processes"
    assert (run / "metrics.json").is_file() and not (run / "failure.json").exists()
    (tb,) = (run / "tensorboard").iterdir()
    assert len(list(tb.glob("events.out.tfevents.*"))) == 1, "one process writes TensorBoard"
    ea = EventAccumulator(str(tb), size_guidance={"images": 0})
    ea.Reload()
    assert len(ea.Images("images/samples")) == 2, "figures drawn once per epoch, by rank 0"
    model = NAGModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt")  # a single process loads it
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 2 * (128 // (2 * 16)), "each process takes half of every epoch"
    assert model.sample(4).shape == (4, 3, 16, 16)


@pytest.mark.slow
def test_a_local_sweep_of_ddp_runs_is_refused_with_the_way_out(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module(
        "nag.train", ["-m", *TINY, "trainer=ddp_cpu", "prior.mean=0,1"], tmp_path, cache_dir, full_error=False
    )
    assert r.returncode == 1 and "hydra/launcher=slurm_ddp" in r.stdout + r.stderr


@pytest.mark.slow
def test_submitit_local_sweep_end_to_end_then_compare(tmp_path: Path, cache_dir: Path) -> None:
    args = ["-m", "hydra/launcher=submitit_local", *TINY, "trainer.max_epochs=1", "test=false", "prior.mean=-3,0"]
    r = run_module("nag.train", args, tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert list((sweep / ".submitit").iterdir()), "the jobs ran as submitit processes"
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "1" / "metrics.json").is_file()
    c = run_module("nag.compare", [str(sweep)], tmp_path, cache_dir)
    assert c.returncode == 0, c.stderr[-3000:]
    with (sweep / "compare" / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(row["prior.mean"], row["status"]) for row in rows] == [("-3", "ok"), ("0", "ok")]


def test_slurm_launcher_follows_trainer_devices(compose_cfg) -> None:
    cfg = compose_cfg(["hydra/launcher=slurm_ddp", "trainer=ddp", "trainer.devices=4", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert "SlurmLauncher" in launcher._target_ and launcher.partition == "gpu"
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4 and launcher.nodes == 1
    assert cfg.trainer.sync_batchnorm and cfg.trainer.strategy == "ddp"
    # bf16 where the GPU has it, float16 otherwise (here: no GPU at all)
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert cfg.trainer.precision == gpu_precision() == ("bf16-mixed" if bf16 else "16-mixed")

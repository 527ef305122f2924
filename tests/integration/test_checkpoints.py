"""Checkpoints that cannot run code, that are never half-written, and that stay good when training diverges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from nag.config.errors import DivergenceError
from nag.runs.checkpoint_file import CheckpointError, read_checkpoint
from nag.runs.trusted import UntrustedConfigError, check_config
from nag.train import train
from nag.training.build import build_model
from nag.training.checkpoint import AtomicCheckpointIO
from nag.training.module import NAGModule
from tests.helpers import CONF, TINY, run_module


def _canary(tmp: Path) -> str:
    return str(tmp / "pwned")


# Each: (where in hyper_parameters, what to put there, words the refusal must contain).
CRAFTED = [
    ("matching", lambda t: {"_target_": "builtins.open", "file": _canary(t), "mode": "w"}, "builtins.open"),
    ("prior", lambda t: {"_target_": "os.system", "command": f"touch {_canary(t)}"}, "os.system"),
    (
        "optimizer",
        lambda t: {
            "_target_": "torch.optim.Adam",
            "_partial_": True,
            "lr": {"_target_": "torch.load", "f": _canary(t), "weights_only": False},
        },
        "optimizer.lr._target_='torch.load'",
    ),
    (
        "prior",
        lambda t: {
            "_target_": "nag.model.priors.NormalPrior",
            "_args_": [{"_target_": "subprocess.run", "args": ["touch", _canary(t)]}],
        },
        "prior._args_[0]._target_='subprocess.run'",
    ),
    (
        "scheduler",
        lambda t: {
            "_target_": "torch.optim.lr_scheduler.LambdaLR",
            "_partial_": True,
            "lr_lambda": {"_target_": "builtins.eval", "_args_": ["lambda e: 1"]},
        },
        "builtins.eval",
    ),
    ("matching", lambda t: {"_target_": "nag.model.matching.squared_distances"}, "is not a subclass of PriorMatching"),
    ("matching", lambda t: {"_target_": "nag.train.main"}, "nag.train.main' is not on nag's allow-list"),
    ("encoder", lambda t: {"_target_": "nag.model.nets.__builtins__"}, "allow-list"),
    (
        "prior",
        lambda t: {"_target_": "nag.model.priors.NormalPrior", "dim": 8, "mean": "${oc.env:HOME}"},
        "interpolation",
    ),
    ("_instantiator", lambda t: "os.system", "unexpected hyper-parameters ['_instantiator']"),
]


@pytest.fixture
def trained(tiny_run: Path) -> Path:
    """The finished tiny run whose last.ckpt the crafted files start from."""
    return tiny_run


def _craft(trained: Path, out: Path, key: str, value: object) -> Path:
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"][key] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize(("key", "make", "words"), CRAFTED, ids=[w for *_, w in CRAFTED])
def test_load_from_checkpoint_refuses_crafted_configs(trained: Path, tmp_path: Path, key, make, words) -> None:
    path = _craft(trained, tmp_path / "crafted.ckpt", key, make(tmp_path))
    with pytest.raises(UntrustedConfigError) as err:
        NAGModule.load_from_checkpoint(path)
    assert words in str(err.value) and not Path(_canary(tmp_path)).exists()


@pytest.mark.slow
def test_every_entry_point_refuses_a_crafted_checkpoint(trained: Path, tmp_path: Path, cache_dir: Path) -> None:
    """nag.evaluate, nag.report and nag.train all load checkpoints; none of them runs what one names."""
    canary = {"_target_": "builtins.open", "file": _canary(tmp_path), "mode": "w"}
    ckpt = _craft(trained, tmp_path / "crafted.ckpt", "matching", canary)
    # nag.report discovers runs by their config and checkpoint: the report's three roles, each crafted.
    sweep = tmp_path / "sweep"
    roles = {"0": "matching._target_=nag.model.matching.NoMatching", "1": "prior.mean=0.0", "2": "prior.mean=-3.0"}
    for job, override in roles.items():
        config = OmegaConf.load(trained / ".hydra" / "config.yaml")
        key, value = override.split("=")
        OmegaConf.update(config, key, float(value) if "mean" in key else value)
        (sweep / job / ".hydra").mkdir(parents=True)
        OmegaConf.save(config, sweep / job / ".hydra" / "config.yaml")
        _craft(trained, sweep / job / "checkpoints" / "last.ckpt", "matching", canary)
    commands = {
        "nag.evaluate": [f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/eval"],
        "nag.train": [*TINY, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/train"],
        "nag.report": [str(sweep), "--n-eval", "16", "--n-samples", "16"],
    }
    for module, args in commands.items():
        r = run_module(module, args, tmp_path, cache_dir, full_error=False)
        assert r.returncode == 1, (module, r.stderr[-2000:])
        assert "matching._target_='builtins.open' is not on nag's allow-list" in r.stderr, (module, r.stderr[-2000:])
        assert "Traceback" not in r.stderr
        assert not Path(_canary(tmp_path)).exists(), f"{module} ran code named by a checkpoint"


def test_every_shipped_config_is_on_the_allow_list(compose_cfg) -> None:
    """The allow-list admits what nag itself builds: every prior, matching distance, net and the optimizers."""
    for group in ("prior", "matching"):
        for yaml in sorted((CONF / group).glob("*.yaml")):
            cfg = compose_cfg([f"{group}={yaml.stem}"])
            check_config(OmegaConf.to_container(cfg[group], resolve=True), f"{group}={yaml.stem}")
    cfg = compose_cfg(["model.scheduler={_target_: torch.optim.lr_scheduler.StepLR, _partial_: true, step_size: 5}"])
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for key in ("encoder", "decoder", "optimizer", "scheduler"):
        check_config(model[key], f"model.{key}")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"epoch,loss\n1,0.5\n", "is not a readable checkpoint"),
        (b"", "is not a readable checkpoint"),
        (None, "holds Python objects that torch's safe loader refuses"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, content: bytes | None, words: str) -> None:
    path = tmp_path / "x.ckpt"
    if content is None:  # a pickle of an arbitrary object: only the weights_only unpickler keeps it from running
        torch.save({"state_dict": {}, "hyper_parameters": {}, "obj": Path("/")}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=words):
        read_checkpoint(path)


def test_another_architecture_is_one_message(trained: Path) -> None:
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    model = NAGModule(
        **{**ckpt["hyper_parameters"], "encoder": {**ckpt["hyper_parameters"]["encoder"], "hidden_dim": 64}}
    )
    with pytest.raises(CheckpointError, match=r"weights of another architecture .*different shapes: encoder"):
        model.load_weights(ckpt["state_dict"], "last.ckpt")


_WRITER = """
import sys, torch
from nag.training.checkpoint import AtomicCheckpointIO
io, i = AtomicCheckpointIO(), 0
while True:
    i += 1
    io.save_checkpoint({"i": i, "w": torch.full((2_000_000,), float(i))}, sys.argv[1])
    print(i, flush=True)
"""


def test_checkpoint_writes_survive_sigkill(tmp_path: Path) -> None:
    """Kill a process that rewrites a 8 MB checkpoint in a loop at random moments: the file on disk is always a
    complete checkpoint (the previous or the next), never a truncated one."""
    target = tmp_path / "last.ckpt"
    for delay in (0.35, 0.5, 0.8):
        p = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None
        p.stdout.readline()  # at least one complete write
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        state = torch.load(target, weights_only=True)
        assert torch.all(state["w"] == state["i"]), "a torn write"


def test_atomic_io_leaves_the_old_file_when_saving_fails(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"i": 1}, target)
    with pytest.raises(Exception):  # noqa: B017 - torch.save of an unpicklable object
        AtomicCheckpointIO().save_checkpoint({"i": 2, "bad": lambda: 0}, target)
    assert torch.load(target, weights_only=True) == {"i": 1}
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is removed"


class _PoisonAt(L.Callback):
    """Fault injection: after optimizer step ``step``, set one weight to NaN (what an exploding update does)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("poison_step", [6, 5])
def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(
    compose_cfg, tmp_path: Path, poison_step: int
) -> None:
    """last.ckpt is written after steps 5, 10, ... Poisoned after step 6, the next step's loss is NaN: the run stops
    there and keeps the finite step-5 checkpoint. Poisoned after step 5, the write of step 5 itself sees the NaN
    weight and refuses. Either way: one message with the step, and no metrics."""
    poison = f"+callbacks.poison={{_target_: tests.integration.test_checkpoints._PoisonAt, step: {poison_step}}}"
    cfg = compose_cfg([*TINY, "callbacks.last_checkpoint.every_n_train_steps=5", "trainer.max_epochs=3", poison])
    with pytest.raises(DivergenceError) as err:
        train(cfg)
    message = str(err.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    if poison_step == 6:
        assert "in training at step 6 (epoch 0)" in message and "non-finite" in message, message
        assert f"The last good checkpoint is {last}" in message
        state = torch.load(last, weights_only=True)
        assert state["global_step"] == 5
        assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    else:
        assert "after step 5 the weights" in message and "left at its last good state" in message, message
        assert not last.exists(), "non-finite weights were written"
    assert not (tmp_path / "metrics.json").exists()


def test_metrics_json_never_holds_nan(tmp_path: Path) -> None:
    from nag.io.output import write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"a": float("nan"), "b": {"c": float("inf"), "d": 1.5}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": {"c": None, "d": 1.5}}


@pytest.mark.parametrize(
    "data",
    [
        {"_target_": "os.system", "command": "touch {canary}"},
        # an interpolation that decodes into a target only when resolved: checked after resolution
        {
            "_target_": "nag.data.synthetic.SyntheticFaces",
            "cache_dir": "${oc.decode:'{_target_: os.system, command: touch {canary}}'}",
        },
    ],
)
def test_a_run_config_from_disk_cannot_name_code(tmp_path: Path, data: dict) -> None:
    from nag.runs.trusted import build_stored

    canary = _canary(tmp_path)
    cfg = OmegaConf.create({k: v.replace("{canary}", canary) for k, v in data.items()})
    with pytest.raises(UntrustedConfigError, match=r"os\.system") as err:
        build_stored(cfg, "run/.hydra/config.yaml data")
    assert "run/.hydra/config.yaml data" in str(err.value), "the message names where the config came from"
    assert not Path(canary).exists()


#: A plateau schedule under which no epoch counts as better than the first: the rate halves after every later one.
PLATEAU = (
    "model.scheduler={_target_: torch.optim.lr_scheduler.ReduceLROnPlateau, _partial_: true, factor: 0.5, "
    "patience: 0, threshold_mode: abs, threshold: 1.0e9}"
)


def test_a_plateau_schedule_follows_val_loss_and_a_run_continues_from_its_lowered_rate(
    compose_cfg, tmp_path: Path
) -> None:
    """ReduceLROnPlateau is told the metric it follows (Lightning stops without one); the rates it lowered are
    stored, a run continues from them, and a rate edited by hand is refused before training."""
    fit = [*TINY, PLATEAU, "test=false"]
    cfg = compose_cfg([*fit, "trainer.max_epochs=3"], output_dir=tmp_path / "first")
    config = build_model(cfg).configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/loss"
    train(cfg)
    lr = cfg.model.optimizer.lr
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    # Lightning steps a plateau scheduler after the epoch's checkpoint is written: the last one holds the rate
    # halved after the second epoch, not yet after the third.
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(lr * 0.5)
    train(compose_cfg([*fit, "trainer.max_epochs=5", f"ckpt_path={last}"], output_dir=tmp_path / "more"))
    state = torch.load(tmp_path / "more" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 4 and state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(lr / 4)
    edited = torch.load(last, weights_only=True)
    edited["optimizer_states"][0]["param_groups"][0]["lr"] = lr * 0.3
    edited["lr_schedulers"][0]["_last_lr"] = [lr * 0.3]
    torch.save(edited, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match=r"edited\.ckpt: its stored scheduler state has _last_lr="):
        train(compose_cfg([*fit, "trainer.max_epochs=4", f"ckpt_path={tmp_path / 'edited.ckpt'}"], tmp_path / "ed"))
    assert not (tmp_path / "ed" / "checkpoints").exists()

"""Runs that survive: resume in place after ``kill -9``, fresh run dirs, sweeps that outlive a bad job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from nag.config.errors import UserInputError
from nag.config.resolvers import fresh_dir
from nag.runs.overrides import override_key
from nag.runs.resume import expand_resume
from tests.helpers import TINY, run_module

STEPS_PER_EPOCH = 4096 // 16  # data.n_train=4096 at the tiny preset's batch size 16
EVERY = 50  # callbacks.last_checkpoint.every_n_train_steps


def _global_step(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=True)["global_step"])


def _logged_steps(run_dir: Path, tag: str = "train/loss_step") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tb,) = (run_dir / "tensorboard").iterdir()
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    ea.Reload()
    return [e.step for e in ea.Scalars(tag)]


@pytest.mark.slow
def test_kill_minus_9_mid_epoch_then_resume_in_place(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    args = [
        *TINY,
        "data.n_train=4096",
        f"callbacks.last_checkpoint.every_n_train_steps={EVERY}",
        "trainer.max_epochs=2",
        "test=false",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "NAG_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nag.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # some steps past the checkpoint: their logged events must not show twice after the resume
    os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer or a preempting scheduler would
    proc.wait()
    saved = _global_step(last)
    assert 0 < saved < STEPS_PER_EPOCH and saved % EVERY == 0, f"killed at step {saved}: not a mid-epoch checkpoint"
    assert not (run_dir / "metrics.json").exists()

    r = run_module("nag.train", [f"resume={run_dir}"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]

    assert _global_step(last) == 2 * STEPS_PER_EPOCH, "the resumed run ends at the planned step count"
    assert json.loads((run_dir / "metrics.json").read_text())["val/loss"] > 0
    assert [p.name for p in run_dir.parent.iterdir()] == ["run"], "no second run dir"
    assert len(list((run_dir / "tensorboard").iterdir())) == 1, "one TensorBoard run"
    steps = _logged_steps(run_dir)
    # Steps after the checkpoint that the killed run may have logged are purged: every step appears once.
    assert sorted(set(steps)) == steps and steps[-1] >= 2 * STEPS_PER_EPOCH - 2
    assert min(s for s in steps if s >= saved) - saved <= 1, "training went on from the checkpoint's step"
    # The original .hydra/ is untouched; the resumed command's config is beside it.
    assert not any(o.startswith("resume=") for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    resumed = OmegaConf.load(run_dir / ".hydra" / "resume" / "overrides.yaml")
    assert f"resume={run_dir}" in resumed and "data.n_train=4096" in resumed


def test_expand_resume_keeps_the_run_overrides_and_lets_new_ones_win(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    OmegaConf.save(
        OmegaConf.create(["debug=tiny", "trainer.max_epochs=2", "prior.mean=-3", f"resume={run}"]),
        run / ".hydra" / "overrides.yaml",
    )
    argv = expand_resume(["--cfg", "job", f"resume={run}", "trainer.max_epochs=5", "+trainer.gradient_clip_val=1"])
    assert argv[:2] == ["--cfg", "job"]
    overrides = argv[2:]
    assert overrides == [
        "debug=tiny",
        "prior.mean=-3",
        "trainer.max_epochs=5",
        "+trainer.gradient_clip_val=1",
        f"resume={run}",
        f"hydra.run.dir={run}",
        "hydra.output_subdir=.hydra/resume",
    ]
    assert expand_resume(["prior.mean=1", "-m"]) == ["prior.mean=1", "-m"], "other commands are left alone"
    with pytest.raises(UserInputError, match="cannot be combined with -m"):
        expand_resume([f"resume={run}", "--multirun"])
    (run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(UserInputError, match="has no checkpoints/last.ckpt"):
        expand_resume([f"resume={run}"])


@pytest.mark.parametrize(
    ("override", "key"),
    [("a.b=1", "a.b"), ("+a.b=1", "a.b"), ("~a.b", "a.b"), ("++x=[1,2]", "x"), ("data@foo=celeba", "data@foo")],
)
def test_override_key(override: str, key: str) -> None:
    assert override_key(override) == key


def test_two_runs_in_the_same_second_get_two_dirs(tmp_path: Path) -> None:
    base = str(tmp_path / "outputs" / "2026-11-28" / "10-00-00")
    first, second, third = fresh_dir(base), fresh_dir(base), fresh_dir(base)
    assert first == base and second == base + "_1" and third == base + "_2"
    assert all(Path(p).is_dir() for p in (first, second, third))


def test_one_run_resolves_its_dir_once(compose_cfg, tmp_path: Path) -> None:
    """The resolver claims a new directory per config, and the same one however often a config asks."""
    cfg = compose_cfg([*TINY, f"hydra.run.dir=${{nag.fresh_dir:{tmp_path}/same}}"])
    again = compose_cfg([*TINY, f"hydra.run.dir=${{nag.fresh_dir:{tmp_path}/same}}"])
    assert cfg.hydra.run.dir == cfg.hydra.run.dir == f"{tmp_path}/same"
    assert again.hydra.run.dir == f"{tmp_path}/same_1"


@pytest.mark.slow
def test_a_bad_job_does_not_stop_the_sweep(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module(
        "nag.train",
        ["-m", *TINY, "trainer.max_epochs=1", "test=false", "prior.variance=1,-1,2"],
        tmp_path,
        cache_dir,
        full_error=False,
    )
    assert r.returncode == 1, "a sweep with a failed job exits non-zero"
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "2" / "metrics.json").is_file()
    failure = json.loads((sweep / "1" / "failure.json").read_text())
    assert failure["status"] == "failed" and "prior.variance=-1 must be > 0" in failure["error"]
    assert not (sweep / "1" / "metrics.json").exists()
    out = r.stdout + r.stderr
    assert "2 of 3 job(s) ok" in out and "failed" in out and "prior.variance=-1 must be > 0" in out
    assert "Traceback" not in out

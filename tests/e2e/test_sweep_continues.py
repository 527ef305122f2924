"""A sweep killed half-way continues (``nag.runs.continuation``): the same ``-m`` command with
``hydra.sweep.dir=<the killed sweep>`` keeps the finished jobs, continues the interrupted one from its
``last.ckpt`` in place, and runs the ones never started; a killed Optuna search continues from its study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nag.runs.continuation import CONTINUE, FINISHED, START
from nag.runs.discovery import discover
from tests.helpers import TINY, run_module

STEPS = 2048 // 16  # steps of the one epoch: data.n_train=2048 at the tiny preset's batch size 16
EVERY = 50  # callbacks.last_checkpoint.every_n_train_steps
LONG = [
    *TINY,
    "data.n_train=2048",
    f"callbacks.last_checkpoint.every_n_train_steps={EVERY}",
    "trainer.max_epochs=1",
    "test=false",
]


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=True)["global_step"])


def _kill_when(args: list[str], cwd: Path, cache_dir: Path, ready: Callable[[], bool], after: float = 0.0) -> None:
    """Start ``python -m nag.train <args>`` and ``kill -9`` it once ``ready()`` (then ``after`` seconds)."""
    env = {**os.environ, "NAG_CACHE_DIR": str(cache_dir), "NAG_FID": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nag.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    time.sleep(after)
    os.kill(proc.pid, signal.SIGKILL)  # as a node reboot or a wall-time limit would
    proc.wait()


def _history(job: Path) -> list[str]:
    """What the job did at each start of its sweep (its record's history)."""
    return [h["action"] for h in json.loads((job / "job.json").read_text())["history"]]


def _tensorboard_steps(job: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tb,) = (job / "tensorboard").iterdir()  # one TensorBoard run, continued
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    ea.Reload()
    return [e.step for e in ea.Scalars("train/loss_step")]


@pytest.mark.slow
def test_a_sweep_killed_between_jobs_and_inside_one_continues(tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *LONG, "prior.mean=0,1,2", f"hydra.sweep.dir={sweep}"]
    # 1. Killed between jobs: as soon as job 0 has written its results.
    _kill_when(args, tmp_path, cache_dir, lambda: (sweep / "0" / "metrics.json").exists())
    kept = (sweep / "0" / "metrics.json").read_bytes()
    kept_ckpt = (sweep / "0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert not (sweep / "2").exists()
    # 2. Continued, and killed again inside job 1, after its first checkpoints (mid-epoch).
    last1 = sweep / "1" / "checkpoints" / "last.ckpt"
    if last1.exists():  # the first kill came after job 1 had checkpoints: start it again for a clean test
        pytest.fail("the first kill came too late (job 1 had checkpoints)")
    _kill_when(args, tmp_path, cache_dir, last1.exists, after=0.15)
    saved = _step(last1)
    assert 0 < saved < STEPS and not (sweep / "1" / "metrics.json").exists()
    assert (sweep / "0" / "metrics.json").read_bytes() == kept, "the finished job was not run again"
    # 3. The same command once more finishes the sweep.
    r = run_module("nag.train", args, tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [job.status for job in discover(sweep)] == ["ok"] * 3
    # What each job did in each of the three runs, from its record: job 0 started once and was kept twice,
    # job 1 (perhaps started in the first run) started and then continued, job 2 ran in the third only.
    assert _history(sweep / "0") == [START, FINISHED, FINISHED]
    assert _history(sweep / "1")[-2:] == [START, CONTINUE] and set(_history(sweep / "1")) == {START, CONTINUE}
    assert _history(sweep / "2") == [START]
    # Job 0: its results and checkpoint untouched.
    assert (sweep / "0" / "metrics.json").read_bytes() == kept
    assert (sweep / "0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == kept_ckpt
    # Job 1: continued from its checkpoint, in place, to the planned step count, one TensorBoard run.
    assert _step(last1) == STEPS
    steps = _tensorboard_steps(sweep / "1")
    assert sorted(set(steps)) == steps, "every step logged once (the killed run's later steps purged)"
    assert min(s for s in steps if s >= saved) - saved <= 1, "training went on from the checkpoint's step"
    # Job 2: never started before, run now; every job is the command's own.
    assert _step(sweep / "2" / "checkpoints" / "last.ckpt") == STEPS
    for job, mean in ((0, 0.0), (1, 1.0), (2, 2.0)):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert metrics["latent/prior_mean"] == mean and metrics["val/loss"] > 0
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]


@pytest.mark.slow
def test_another_command_in_a_sweep_dir_is_refused_and_changes_nothing(tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    base = ["-m", *TINY, "trainer.max_epochs=1", "test=false", f"hydra.sweep.dir={sweep}"]
    r = run_module("nag.train", [*base, "prior.mean=0"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    files = {p: p.read_bytes() for p in (sweep / "0").rglob("*") if p.is_file() and "tensorboard" not in p.parts}
    r = run_module("nag.train", [*base, "prior.mean=5"], tmp_path, cache_dir, full_error=False)
    assert r.returncode == 1
    err = r.stdout + r.stderr
    assert "prior.mean=0" in err and "prior.mean=5" in err and "Traceback" not in err  # both jobs named
    assert {p: p.read_bytes() for p in files} == files, "the job's files (its .hydra too) are as they were"
    assert not (sweep / "0" / "failure.json").exists()


@pytest.mark.slow
def test_a_killed_optuna_search_continues_from_its_study(tmp_path: Path, cache_dir: Path) -> None:
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "search"
    args = ["-m", "hparams_search=optuna", *LONG, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"]
    last1 = sweep / "1" / "checkpoints" / "last.ckpt"
    _kill_when(args, tmp_path, cache_dir, last1.exists, after=0.15)  # inside trial 1
    saved = _step(last1)
    assert 0 < saved < STEPS
    first = json.loads((sweep / "0" / "job.json").read_text())["overrides"]
    interrupted = json.loads((sweep / "1" / "job.json").read_text())["overrides"]

    r = run_module("nag.train", args, tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _history(sweep / "0") == [START] and _history(sweep / "1") == [START, CONTINUE]
    assert _history(sweep / "3") == [START]
    study = optuna.load_study(study_name="nag_lambda", storage=f"sqlite:///{sweep}/optuna.db")
    states = [t.state.name for t in study.trials]
    # trial 0 kept, trial 1 (killed) failed and asked again as trial 2 in dir 1, trial 3 new in dir 3
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert study.trials[2].params == study.trials[1].params
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "3"]
    assert json.loads((sweep / "0" / "job.json").read_text())["overrides"] == first
    assert json.loads((sweep / "1" / "job.json").read_text())["overrides"] == interrupted
    assert _step(last1) == STEPS, "the interrupted trial went on from its checkpoint to its planned end"
    assert (sweep / "optimization_results.yaml").is_file()

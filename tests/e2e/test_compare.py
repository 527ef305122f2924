"""Sweeps as studies: python -m nag.compare on real sweeps, long run names, the HParams table, the wheel."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nag.analysis.compare import Comparison, table
from nag.config.resolvers import RUN_NAME_LIMIT, run_name
from nag.runs.discovery import swept_keys
from nag.runs.overrides import override_values
from nag.runs.run_dir import RunDir
from tests.helpers import ROOT, TINY, run_module


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def mean_sweep(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A 3-job sweep over the prior mean, through the real multirun entry point."""
    cwd = tmp_path_factory.mktemp("mean_sweep")
    r = run_module(
        "nag.train", ["-m", *TINY, "trainer.max_epochs=1", "test=false", "prior.mean=-3,0,3"], cwd, cache_dir
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (cwd / "multirun").glob("*/*")
    return sweep


@pytest.mark.slow
def test_compare_a_prior_mean_sweep(mean_sweep: Path, tmp_path: Path, cache_dir: Path) -> None:
    r = run_module("nag.compare", [str(mean_sweep)], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    out = mean_sweep / "compare"
    rows = _csv(out / "summary.csv")
    assert [row["prior.mean"] for row in rows] == ["-3", "0", "3"], "one row per job, the swept key as a column"
    assert "trainer.max_epochs" not in rows[0], "keys that do not vary are not columns"
    assert all(row["status"] == "ok" and float(row["latent_mmd"]) > 0 for row in rows)
    # The latent fit is measured against each job's own prior: the codes stay near 0, so the far means fit worse.
    mmd = {row["prior.mean"]: float(row["latent_mmd"]) for row in rows}
    assert mmd["-3"] > mmd["0"] < mmd["3"]
    with Image.open(out / "samples.png") as im:
        assert im.width > 3 * 100 and im.height > 100, "three labelled grids side by side"
    assert (out / "latent_mmd_vs_prior.mean.png").is_file()
    assert "| job | prior.mean | status |" in (out / "summary.md").read_text()
    assert all(len(line) <= 100 for line in r.stdout.splitlines() if not line.startswith("written:"))
    assert "prior.mean" in r.stdout and r.stdout.count(" ok ") == 3


@pytest.mark.slow
def test_compare_evaluates_best_checkpoints_against_one_baseline(
    mean_sweep: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "cmp"
    args = [
        str(mean_sweep),
        "--evaluate",
        "--n-eval",
        "32",
        "--n-samples",
        "32",
        "--metric",
        "diversity",
        "--fid-n",
        "8",
        "--fid-inf",
        "3",
        "--samplers",
        "prior",
        "--out",
        str(out),
    ]
    r = run_module("nag.compare", args, tmp_path, cache_dir, fid=True)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _csv(out / "summary.csv")
    for row in rows:
        assert float(row["sample_swd"]) > 0 and float(row["diversity"]) >= 0 and float(row["psnr"]) > 5
        assert float(row["fid"]) > 0 and 0 <= float(row["recall"]) <= 1 and row["kid"] and row["precision"]
    assert "real vs real: sample_swd" in r.stdout and (out / "diversity_vs_prior.mean.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["fid_n"] == 8 and summary["baseline"]["fid"] > 0  # the floor, at the jobs' n
    # --fid-inf: FID∞ beside FID in the samplers' table, and the floor's
    scored = _csv(out / "samplers.csv")
    assert [row["sampler"] for row in scored] == ["prior"] * len(rows)
    assert all(math.isfinite(float(row["fid_inf"])) and float(row["fid"]) > 0 for row in scored)
    assert "fid_inf " in (out / "samplers.md").read_text().split("Real vs real (the floor):")[1]


@pytest.mark.slow
def test_a_sweep_with_a_failed_job_is_compared_with_its_reason(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module(
        "nag.train",
        ["-m", *TINY, "trainer.max_epochs=1", "test=false", "prior.variance=1,-1,2"],
        tmp_path,
        cache_dir,
        full_error=False,
    )
    assert r.returncode == 1
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    c = run_module("nag.compare", [str(sweep)], tmp_path, cache_dir)
    assert c.returncode == 0, c.stderr[-3000:]
    rows = _csv(sweep / "compare" / "summary.csv")
    assert [(row["prior.variance"], row["status"]) for row in rows] == [("1", "ok"), ("-1", "failed"), ("2", "ok")]
    assert "prior.variance=-1 must be > 0" in rows[1]["reason"] and rows[1]["latent_mmd"] == ""
    assert "1 failed: " in c.stdout


def test_compare_of_a_folder_without_runs_is_one_message(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module("nag.compare", [str(tmp_path)], tmp_path, cache_dir, full_error=False)
    assert r.returncode == 1 and "no training runs under" in r.stderr and "Traceback" not in r.stderr


def test_swept_keys_are_the_ones_that_vary(tmp_path: Path) -> None:
    runs = []
    for i, overrides in enumerate(
        [
            ["debug=tiny", "prior.mean=-3", "matching=none"],
            ["debug=tiny", "prior.mean=0", "matching=none"],
            ["debug=tiny", "prior.mean=0", "matching=none", "+trainer.gradient_clip_val=1"],
        ]
    ):
        (tmp_path / str(i) / ".hydra").mkdir(parents=True)
        (tmp_path / str(i) / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        runs.append(RunDir(tmp_path / str(i)))
    assert swept_keys(runs) == ["prior.mean", "trainer.gradient_clip_val"]
    assert override_values(["+a=1", "~b", "c=x=y"]) == {"a": "1", "c": "x=y"}


def test_terminal_table_fits_100_columns_with_many_columns() -> None:
    rows = [
        {
            "job": str(i),
            "prior.mean": str(m),
            "matching.weight": "10",
            "status": "ok",
            "reason": "",
            **dict.fromkeys(
                [
                    "val_recon",
                    "code_mean",
                    "code_var",
                    "code_kurt",
                    "latent_mmd",
                    "sample_swd",
                    "diversity",
                    "psnr",
                    "ssim",
                ],
                -1.234567e-5,
            ),
        }
        for i, m in enumerate((-3, 0))
    ]
    result = Comparison(
        rows,
        ["prior.mean", "matching.weight"],
        ["val_recon", "code_mean", "code_var", "code_kurt", "latent_mmd", "sample_swd", "diversity", "psnr", "ssim"],
    )
    text = table(result)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "sample_swd" in text and "latent_mmd" in text, "no column is cut off: the table is split instead"


def test_long_run_names_are_shortened_readably_and_stay_unique() -> None:
    long = ",".join(f"model.encoder.some_long_hyper_parameter_{i}=value_{i}" for i in range(12))
    other = long.replace("value_11", "value_12")
    a, b = run_name(long), run_name(other)
    assert len(a.encode()) <= RUN_NAME_LIMIT and len(b.encode()) <= RUN_NAME_LIMIT
    assert a != b, "unique within a sweep"
    assert a.startswith("some_long_hyper_parameter_0=value_0,"), "keys shortened to their last part, values kept"
    assert run_name("prior.mean=-3,matching=swd") == "prior.mean=-3,matching=swd", "short names are unchanged"


@pytest.mark.slow
def test_a_job_with_long_overrides_runs_and_logs_hparams(tmp_path: Path, cache_dir: Path) -> None:
    """Also with overrides whose values are interpolations: the HParams summary reads them as text (resolving
    them inside Hydra's read-only config failed with ReadonlyConfigError)."""
    long = [f"+hparams_note_{i}={'x' * 40}" for i in range(6)]  # 6 long overrides: > 255 bytes joined
    interpolated = ["data.cache_dir='${paths.cache_dir}'", "matching.weight='${prior.variance}'"]
    args = [
        *TINY,
        "trainer.max_epochs=1",
        "test=false",
        "prior.mean=-1",
        f"hydra.run.dir={tmp_path}/run",
        *long,
        *interpolated,
    ]
    r = run_module("nag.train", args, tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    (tb,) = (tmp_path / "run" / "tensorboard").iterdir()
    assert len(tb.name.encode()) <= RUN_NAME_LIMIT and "~" in tb.name
    ea = EventAccumulator(str(tb))
    ea.Reload()
    assert "hparams/val_recon" in ea.Tags()["scalars"] and "hparams/latent_mmd" in ea.Tags()["scalars"]
    start = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"prior.mean" in start and b"hparams_note_5" in start, "every override is an hparam"
    assert b"${prior.variance}" in start, "an interpolated value is logged as the text the user typed"


@pytest.mark.slow
def test_the_wheel_ships_the_configs_and_runs_from_anywhere(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(ROOT),
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("nag-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    assert "nag/conf/train.yaml" in names and "nag/conf/prior/normal_mean-3.yaml" in names
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    for module in ("nag.train", "nag.evaluate"):
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import nag, runpy, sys; sys.argv = ['x', '--cfg', 'job']; "
                f"assert nag.__file__.startswith({str(tmp_path / 'site')!r}), nag.__file__; "
                f"runpy.run_module('{module}', run_name='__main__')",
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert "task_name:" in r.stdout

"""The benchmark end to end, in its quick form: ``experiment=benchmark`` (tiny) trains its arms as one multirun, and
``nag.compare --samplers prior,gmm,flow`` scores every job with every sampler in one table whose rows stay with
their jobs; ``--pick-lambda`` reads a λ search."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, run_module

QUICK = [
    "experiment=benchmark",
    *TINY,
    "arm=plain,cramer_wold",
    "prior.mean=0,-3",
    "trainer.max_epochs=1",
    "data.n_train=256",
]


@pytest.mark.slow
def test_the_quick_benchmark_scores_every_job_with_every_sampler(tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "bench"
    r = run_module("nag.train", [*QUICK, f"hydra.sweep.dir={sweep}"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "4 of 4 job(s) ok" in r.stdout + r.stderr
    score = [str(sweep), "--samplers", "prior,gmm,flow", "--n-eval", "64", "--n-samples", "64"]
    # Killed while scoring (kill -9 once the first job's rows are written): the jobs it finished are on disk,
    # whole, in the table's files.
    partial = tmp_path / "partial"
    env = {**os.environ, "NAG_CACHE_DIR": str(cache_dir), "NAG_FID": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nag.compare", *score, "--out", str(partial)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    # rare_features.csv: the last of the files written after each job
    while not (partial / "rare_features.csv").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the comparison ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (partial / "summary.csv").exists(), "killed before the end"
    kept = list(csv.DictReader((partial / "samplers.csv").open()))
    jobs = sorted({row["job"] for row in kept})
    assert 1 <= len(jobs) < 4 and len(kept) == 3 * len(jobs), "whole jobs, each with its three samplers"
    rare = list(csv.DictReader((partial / "rare_features.csv").open()))
    rare_jobs = sorted({row["job"] for row in rare})
    assert len(rare) == 15 * len(rare_jobs) and set(rare_jobs) <= set(jobs), "each file whole (written atomically)"
    assert "Real vs real (the floor): sample_swd" in (partial / "samplers.md").read_text(), "the floor, from the start"
    r = run_module("nag.compare", [*score, "--judges", "2"], tmp_path, cache_dir)  # a second judge, seed 1
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader((sweep / "compare" / "samplers.csv").open()))
    assert [(row["job"], row["sampler"]) for row in rows] == [
        (str(j), s) for j in range(4) for s in ("prior", "gmm", "flow")
    ]
    summary = {row["job"]: row for row in csv.DictReader((sweep / "compare" / "summary.csv").open())}
    gaps = list(csv.reader((sweep / "compare" / "attribute_gaps.csv").open()))
    assert gaps[1][0] == "judge balanced accuracy" and gaps[2][0] == "real" and len(gaps[0]) == 1 + 2 + 1 + 15
    judge = dict(zip(gaps[0][4:], gaps[1][4:], strict=True))
    real = dict(zip(gaps[0][4:], gaps[2][4:], strict=True))
    judged = {n for n, f in real.items() if f}  # a frequency only where the judge sees the attribute:
    clear = {n for n, b in judge.items() if not b or abs(float(b) - 0.9) > 1e-3}  # (the csv rounds to 4 digits)
    assert judged & clear == {n for n in clear if judge[n] and float(judge[n]) >= 0.9}
    assert judged and len(judged) < 15, "a judge of 256 16-px faces sees some attributes, not all"
    for row in rows:
        job = sweep / row["job"]
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        assert f"arm={row['arm']}" in overrides and f"prior.mean={row['prior.mean']}" in overrides
        assert row["psnr"] == summary[row["job"]]["psnr"], "the job's own reconstruction"
        metrics = json.loads((job / "metrics.json").read_text())
        assert float(row["train_s"]) == pytest.approx(metrics["time/train_seconds"], rel=1e-3)
        assert float(row["train_s"]) > 0
        assert 0 <= float(row["freq_gap"]) <= float(row["max_gap"]) <= 1 and row["max_gap_attr"] in judged
        assert float(row["sample_swd"]) > 0 and row["fid"] == ""  # FID is off in the tests (NAG_FID=false)
    # Each job's prior row is the comparison's own prior evaluation; the ex-post ones differ from it.
    for job in map(str, range(4)):
        by = {row["sampler"]: row for row in rows if row["job"] == job}
        assert by["prior"]["sample_swd"] == summary[job]["sample_swd"]
        assert len({by[s]["sample_swd"] for s in by}) == 3
        assert len(list((sweep / job / "samplers").glob("flow-*.pt"))) == 1, "the flow is stored beside its job"
    assert len(gaps) == 1 + 2 + 12
    for g in gaps[3:]:  # each row's gap is the mean over the judged attributes of |samples − real|
        by_row = next(r for r in rows if (r["job"], r["sampler"]) == (g[0], g[3]))
        freq = dict(zip(gaps[0][4:], g[4:], strict=True))
        mean_gap = sum(abs(float(freq[n]) - float(real[n])) for n in judged) / len(judged)
        assert float(by_row["freq_gap"]) == pytest.approx(mean_gap, abs=2e-4)
        assert {n for n, f in freq.items() if f} == judged
    assert "| job | arm | prior.mean | sampler | fid |" in (sweep / "compare" / "samplers.md").read_text()
    # --judges 2: per row, each attribute both judges see, the range of their gaps on the same samples; the
    # samplers' column is its mean
    spread = list(csv.DictReader((sweep / "compare" / "judge_spread.csv").open()))
    assert [(s["job"], s["sampler"]) for s in spread] == [(r["job"], r["sampler"]) for r in rows]
    assert set(spread[0]) == {"job", "arm", "prior.mean", "sampler", *judged}
    for s, row in zip(spread, rows, strict=True):
        ranges = [float(v) for n, v in s.items() if n in judged and v]
        # Each judge's signed gap lies in [-1, 1], so their range in [0, 2] (two tiny judges can read one sampler's
        # attribute on opposite sides of the real faces).
        assert ranges, "the judges share some attribute they both see"
        assert all(0 <= v <= 2 for v in ranges), ranges
        assert float(row["judge_gap_spread"]) == pytest.approx(sum(ranges) / len(ranges), abs=2e-4)
    # The README's form: one row per job, each sampler's cell its FID (off here) · SWD · gap in points.
    text = (sweep / "compare" / "benchmark.md").read_text()
    blind = sorted(set(judge) - judged, key=list(judge).index)
    assert f"Not judged (the attribute judge's held-out balanced accuracy is below 0.9): {blind[0]} (" in text
    table = text.splitlines()
    assert table[0] == (
        "| job | arm | prior.mean | prior: FID · SWD · gap | gmm: FID · SWD · gap | "
        "flow: FID · SWD · gap | PSNR | train s |"
    )
    for line, job in zip(table[2:6], map(str, range(4)), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        by = {row["sampler"]: row for row in rows if row["job"] == job}
        assert cells[0] == job and cells[1:3] == [by["prior"]["arm"], by["prior"]["prior.mean"]]
        for c, s in zip(cells[3:6], ("prior", "gmm", "flow"), strict=True):  # (the csv's cells hold 4 digits)
            fid, swd, gap = c.split(" · ")
            assert fid == "–" and abs(float(swd) - float(by[s]["sample_swd"])) <= 0.51
            assert abs(float(gap) - 100 * float(by[s]["freq_gap"])) <= 0.051
        assert float(cells[6]) == pytest.approx(float(by["prior"]["psnr"]), abs=0.006)
    # Where rare features are lost: one row per job and attribute, the stages and each sampler's frequency,
    # the samplers' frequencies those of attribute_gaps.csv.
    rare = list(csv.DictReader((sweep / "compare" / "rare_features.csv").open()))
    assert len(rare) == 4 * 15 and list(rare[0])[-7:] == [
        "real",
        "probe_bacc",
        "kept",
        "reconstruction",
        "prior",
        "gmm",
        "flow",
    ]
    by_job = {(g[0], g[3]): dict(zip(gaps[0][4:], g[4:], strict=True)) for g in gaps[3:]}
    for r in rare:
        assert r["real"] == real[r["attribute"]], "the classifier's real frequency, as in attribute_gaps.csv"
        assert all(r[s] == by_job[(r["job"], s)][r["attribute"]] for s in ("prior", "gmm", "flow"))
        if r["attribute"] in judged:
            assert 0 <= float(r["reconstruction"]) <= 1
        else:
            assert r["real"] == r["kept"] == r["reconstruction"] == "", "nothing the judge cannot see"
        assert r["probe_bacc"] == "" or 0 <= float(r["probe_bacc"]) <= 1


@pytest.mark.parametrize(
    "args",
    [
        ["--judges", "0", "--samplers", "prior"],
        ["--judges", "11", "--samplers", "prior"],
        ["--judges", "2", "--evaluate"],
    ],
    ids=["0", "11", "no-samplers"],
)
def test_a_judge_count_is_refused_by_name_before_any_work(tmp_path: Path, args: list[str]) -> None:
    from nag.compare import main

    with pytest.raises(SystemExit) as e:  # exit status 1 with this line on stderr
        main([str(tmp_path / "no-such-sweep"), *args])
    assert e.value.code == f"error: --judges {args[1]}: give 1 to 10, with --samplers (the judges score samples)."
    with pytest.raises(SystemExit) as e:  # a valid count goes on to the sweep, and stops there
        main([str(tmp_path / "no-such-sweep"), "--judges", "3", "--samplers", "prior"])
    assert "no-such-sweep is not a directory" in str(e.value.code)


def test_samplers_are_refused_by_name_and_gmm_takes_a_component_count() -> None:
    from nag.analysis.benchmark import parse_samplers
    from nag.config.errors import UserInputError
    from nag.samplers.core import make_sampler

    assert parse_samplers("prior, gmm,gmm50 ,flow") == ["prior", "gmm", "gmm50", "flow"]
    assert parse_samplers("gmm_bic,kde") == ["gmm_bic", "kde"]
    assert make_sampler("gmm_bic").name == "gmm_bic" and make_sampler("kde").name == "kde"
    assert make_sampler("gmm").n_components == 10 and make_sampler("gmm50").n_components == 50
    assert make_sampler("gmm1").name == "gaussian"
    for bad in ("gmm0", "gmm501", "gmmx", "gmm-3", "flows"):
        with pytest.raises(
            UserInputError,
            match=rf"^--samplers: '{bad}' is not a sampler; choose from prior, "
            r"gaussian, gmm, gmm<k>, gmm_bic, kde, flow, two_stage \(k from 1 to 500\)\.$",
        ):
            parse_samplers(f"prior,{bad}")
    with pytest.raises(UserInputError, match="give distinct names"):
        parse_samplers("gmm,gmm")

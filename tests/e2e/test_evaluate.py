"""nag.evaluate, nag.report and the notebook, end to end on the report's three runs (tiny)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nag.analysis.findings import assess
from nag.analysis.measures import FIDELITY_ROWS, measures_from_json, report_measures
from nag.analysis.report import find_runs, plain_codes_verdict
from nag.evaluate import evaluate
from tests.helpers import ROOT, run_module

pytestmark = pytest.mark.slow
SMALL = ["n_eval=32", "n_samples=32", "n_fit=64"]


def run_dirs(sweep: Path) -> dict[str, Path]:
    return {role: run.path for role, run in find_runs(sweep).items()}


def test_roles_are_read_from_what_the_checkpoints_store(report_sweep: Path, tmp_path: Path) -> None:
    import shutil

    from omegaconf import OmegaConf

    from nag.analysis.runs import load_model, role_of
    from nag.runs.run_dir import RunDir

    runs = find_runs(report_sweep)
    roles = {r: role_of(load_model(run, best=False)) for r, run in runs.items()}
    assert roles["plain"].plain and not roles["mean0"].plain and not roles["mean-3"].plain
    assert (roles["mean0"].normal_mean, roles["mean-3"].normal_mean) == (0.0, -3.0)
    assert roles["mean0"].variance == roles["mean-3"].variance == 2.0
    # A run whose config claims to be the plain autoencoder is what its checkpoint says it is.
    liar = tmp_path / "liar"
    shutil.copytree(runs["mean0"].path, liar)
    cfg = OmegaConf.load(liar / ".hydra" / "config.yaml")
    cfg.matching = {"_target_": "nag.model.matching.NoMatching", "weight": 0.0}
    OmegaConf.save(cfg, liar / ".hydra" / "config.yaml")
    role = role_of(load_model(RunDir(liar), best=False))
    assert not role.plain and role.normal_mean == 0.0


def test_evaluate_cli_writes_metrics_figures_and_tensorboard(report_sweep: Path, tmp_path: Path, cache_dir) -> None:
    ckpt = run_dirs(report_sweep)["mean0"] / "checkpoints" / "last.ckpt"
    out = tmp_path / "ev"
    r = run_module("nag.evaluate", [f"ckpt_path={ckpt}", *SMALL, f"hydra.run.dir={out}"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["setup"]["prior"].startswith("NormalPrior(mean=0, variance=2")
    assert m["setup"]["sampler"] == "prior" and m["setup"]["n_test"] == 32
    keys = [
        ("reconstruction", "psnr"),
        ("latent", "mmd"),
        ("samples", "swd_mean"),
        ("samples", "diversity"),
        ("real_baseline", "swd_mean"),
        ("interpolation", "step_ratio"),
    ]
    for section, key in keys:
        assert isinstance(m[section][key], float), (section, key)
    assert set(m["probes"]) == {"+100", "-100"}
    assert "fidelity" not in m["samples"] and "fidelity" not in m["real_baseline"]  # NAG_FID=false (tests/test_fid)
    assert "Smiling" in m["by_attribute"]
    for png in ("reconstructions", "interpolation", "samples", "probe_mean+100", "probe_mean-100"):
        assert (out / f"{png}.png").stat().st_size > 100, png
    ea = EventAccumulator(str(out / "tensorboard"))
    ea.Reload()
    assert "images/samples" in ea.Tags()["images"] and "samples/swd_mean" in ea.Tags()["scalars"]
    assert "FID" not in r.stdout + r.stderr  # off (NAG_FID=false), and silently so: no weights were looked for
    # Attributes: directions, the edit grid and the classifier's verdicts.
    att = m["attributes"]
    edited = att["edited"]
    assert edited and set(edited) <= {"Eyeglasses", "Smiling", "Blond_Hair", "Sunglasses", "Wearing_Hat", "Bald"}
    with Image.open(out / "attribute_edits.png") as im:  # rows: 2 faces x edited attributes; columns: 5 steps
        side = 16 + 2
        assert im.size == (5 * side + 2, 2 * len(edited) * side + 2)
    names = set(att["balanced_accuracy"])
    assert len(att["accuracy"]) == len(names) == 15 and "Sunglasses" in names, "one entry per synthetic attribute"
    judged = {n for n, b in att["balanced_accuracy"].items() if b is not None and b >= att["judged_at"]}
    assert set(att["not_judged"]) == names - judged, "what the judge cannot see is listed, not scored"
    for section in ("reconstruction_agreement", "frequency"):
        assert set(att[section]) == judged
    if judged:  # (a judge of 128 16-px faces sees little; the arithmetic is tested in test_attributes)
        assert 0 <= att["frequency_gap"] <= 1
    assert 0 <= att["accuracy_mean"] <= 1
    assert all(0 <= v <= 1 for e in att["edit"].values() for v in e.values())


def test_evaluate_any_model_from_any_prior_and_ex_post(report_sweep: Path, compose_cfg, tmp_path: Path) -> None:
    ckpt = run_dirs(report_sweep)["plain"] / "checkpoints" / "last.ckpt"
    far = evaluate(
        compose_cfg([f"ckpt_path={ckpt}", *SMALL, "prior=normal_mean0", "prior.mean=100"], config="evaluate")
    )
    assert far["setup"]["prior"].startswith("NormalPrior(mean=100")
    gmm = evaluate(
        compose_cfg(
            [f"ckpt_path={ckpt}", *SMALL, "sampler=gmm", "sampler.n_components=2"],
            output_dir=tmp_path / "gmm",
            config="evaluate",
        )
    )
    assert gmm["setup"]["sampler"] == "gmm2"
    # The latent fit is measured against the prior asked for: codes near 0 are ~100 away from N(100, 2).
    assert far["latent"]["mean_error"] > 90 and gmm["latent"]["mean_error"] < 10
    assert gmm["samples"]["diversity"] > 0 and gmm["samples"] != far["samples"]


def test_evaluate_with_a_flow_stores_it_beside_the_run_and_reuses_it(
    report_sweep: Path, tmp_path: Path, cache_dir
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dirs(report_sweep)["mean0"], run)
    args = [
        f"ckpt_path={run}/checkpoints/last.ckpt",
        *SMALL,
        "sampler=flow",
        "sampler.max_epochs=15",
        "attributes.enabled=false",
    ]
    first = run_module("nag.evaluate", [*args, f"hydra.run.dir={tmp_path}/e1"], tmp_path, cache_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    (stored,) = (run / "samplers").glob("flow-*.pt")
    assert "flow stored in" in first.stdout + first.stderr
    m1 = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert m1["setup"]["sampler"] == "flow_maf" and m1["samples"]["diversity"] > 0
    again = run_module("nag.evaluate", [*args, f"hydra.run.dir={tmp_path}/e2"], tmp_path, cache_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    shown = again.stdout + again.stderr
    assert f"flow reused from {stored}" in shown and "flow (maf) fitted on" not in shown
    m2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert m2["samples"] == m1["samples"], "the same flow, the same samples"


def test_evaluate_missing_checkpoint_is_one_message(tmp_path: Path, cache_dir) -> None:
    r = run_module("nag.evaluate", [f"ckpt_path={tmp_path}/none.ckpt"], tmp_path, cache_dir)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"ckpt_path={tmp_path}/none.ckpt does not exist" in r.stderr


def test_report_regenerates_figures_and_judges_six_findings(report_sweep: Path, tmp_path: Path, cache_dir) -> None:
    out = tmp_path / "report"
    r = run_module(
        "nag.report",
        [str(report_sweep), "--out", str(out), "--n-eval", "32", "--n-samples", "32", "--fid-n", "8"],
        tmp_path,
        cache_dir,
        fid=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    md = (out / "report.md").read_text()
    rows = [
        ln for ln in md.splitlines() if ln.startswith("| ") and ("**supported**" in ln or "**not supported**" in ln)
    ]
    assert len(rows) == 6
    for png in (
        "reconstructions",
        "interpolation",
        "samples_matched_N0",
        "probe_mean+100",
        "probe_mean-100",
        "samples_plain_N0",
        "plain_vs_matched_N-3",
        "samples_plain_gmm",
    ):
        assert (out / f"{png}.png").is_file() and f"({png}.png)" in md
    m = json.loads((out / "metrics.json").read_text())
    measures = measures_from_json(m["measures"])  # what the findings were judged on, read back and checked
    assert m["findings"] == [asdict(f) for f in assess(measures)]  # the verdicts follow from the stored measures
    assert measures == report_measures(m["details"])  # ... which are the stored evaluations' numbers
    assert set(m["runs"]) == {"plain", "mean0", "mean-3"} and measures.n_test == 32
    # the prose states the measured facts: the real floor, the plain codes and the verdict drawn from them
    assert f"{measures.real.swd_mean:.1f}" in md and f"{measures.plain_codes.code_mean:+.2f}" in md
    assert plain_codes_verdict(measures.plain_codes) in md
    # the FID table: one row per setting, n beside every value, the bias said
    fid_rows = {ln.split(" | ")[0][2:]: ln for ln in md.splitlines() if re.search(r"\| [\d,]+ vs [\d,]+ \|$", ln)}
    assert set(fid_rows) == set(FIDELITY_ROWS), md
    assert fid_rows["real vs real (validation vs test)"].endswith("| 8 vs 8 |")  # the floor at FID's own n
    assert fid_rows["plain, ex-post GMM samples"].endswith("| 8 vs 8 |") and "(here 8)" in md
    assert m["details"]["plain_gmm"]["samples"]["fidelity"]["n"] == 8


def test_report_without_the_runs_says_how_to_make_them(tmp_path: Path, cache_dir) -> None:
    r = run_module("nag.report", [str(tmp_path)], tmp_path, cache_dir)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "experiment=report_plain,report_mean0,report_mean-3" in r.stderr


@pytest.mark.parametrize("how", ["NAG_RUN_DIR", "newest sweep"])
def test_notebook_runs_on_the_tiny_sweep(report_sweep: Path, cache_dir, tmp_path: Path, how: str) -> None:
    """With NAG_RUN_DIR, or without it: then the newest sweep under ../multirun that holds the report's runs (a
    newer sweep of something else is passed over), named in the output."""
    nb = nbformat.read(ROOT / "notebooks" / "reproduce_report.ipynb", as_version=4)
    env = {"NAG_RUN_DIR": str(report_sweep), "NAG_N_EVAL": "32", "NAG_N_SAMPLES": "32", "NAG_CACHE_DIR": str(cache_dir)}
    cwd = ROOT / "notebooks"
    if how == "newest sweep":
        env["NAG_RUN_DIR"] = ""
        cwd = tmp_path / "notebooks"
        cwd.mkdir()
        (tmp_path / "multirun" / "2026-01-01").mkdir(parents=True)
        (tmp_path / "multirun" / "2026-01-01" / "10-00-00").symlink_to(report_sweep)
        (tmp_path / "multirun" / "2026-01-02" / "09-00-00" / "0").mkdir(parents=True)  # newer, not the report's
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert text.count("supported") >= 6 and "plain codes: mean" in text
    images = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 8
    used = "../multirun/2026-01-01/10-00-00: the newest sweep" if how == "newest sweep" else f"={report_sweep}"
    assert f"using {'NAG_RUN_DIR' if how == 'NAG_RUN_DIR' else ''}{used}" in text

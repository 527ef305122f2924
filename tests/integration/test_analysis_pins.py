"""What the analysis side really feeds its measures (nag.evaluate, nag.report, nag.compare), pinned where a
plausible one-line bug would otherwise pass every test: which images an interpolation and a probe use, which codes
an ex-post sampler fits, which two real sets the floor compares, which checkpoint "best" is, whether rows stay with
their jobs past job 9, whether training draws change per step, which codes the latent diagnostics read, and
whether an atomic write syncs before it renames."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

from nag.analysis.evaluation import RealImages, evaluate_reconstruction, evaluate_sampling
from nag.analysis.runs import load_model, load_run, open_run
from nag.config.errors import UserInputError
from nag.metrics.quality import multiscale_swd
from nag.model.latent_fit import latent_fit
from nag.model.priors import NormalPrior, fixed_draw, translated
from nag.runs.run_dir import RunDir
from nag.samplers.core import GaussianMixtureSampler
from nag.training.figures import image_grid
from nag.training.module import NAGModule
from tests.helpers import TINY_FIT, fit_tiny


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> NAGModule:
    """A tiny model trained a few steps (random weights would do; trained ones make the checks less trivial)."""
    from nag.config.compose import compose_run

    cfg = compose_run(
        [f"paths.cache_dir={cache_dir}", *TINY_FIT, "+trainer.max_steps=16"], tmp_path_factory.mktemp("pins")
    )
    _, _, m = fit_tiny(cfg)
    return m.eval()


def _real(n: int = 24, size: int = 16) -> RealImages:
    g = torch.Generator().manual_seed(0)
    test = torch.rand(n, 3, size, size, generator=g)
    val = torch.rand(n, 3, size, size, generator=g) * 0.5  # a different real set: the floor is not zero
    train = torch.rand(64, 3, size, size, generator=g).clamp(0.6, 1.0)  # brighter: its codes differ from the test's
    return RealImages(test, torch.zeros(n, 0), (), val, train)


def test_the_interpolation_runs_from_test_images_0_5_to_6_11(model: NAGModule) -> None:
    real = _real()
    ev = evaluate_reconstruction(model, real, model.prior)
    with torch.no_grad():
        rows = model.interpolate(real.test[:6], real.test[6:12], steps=11)  # (6, 11, 3, H, W)
        start, end = model.reconstruct(real.test[:6]), model.reconstruct(real.test[6:12])
    assert torch.allclose(rows[:, 0], start, atol=1e-6) and torch.allclose(rows[:, -1], end, atol=1e-6)
    assert torch.allclose(ev.figures["interpolation"], image_grid(rows.flatten(0, 1), nrow=11), atol=1e-6)


def test_a_probe_decodes_the_samples_noise_moved_to_its_mean(model: NAGModule) -> None:
    real, prior = _real(), model.prior
    ev = evaluate_sampling(model, real, prior, n_samples=32, probes=(100.0,), seed=3)
    noise = fixed_draw(prior, 32, 3)  # the same noise as the samples, at most 256 of it
    with torch.no_grad():
        probe = model.decode(translated(noise, prior, 100.0))
    assert torch.allclose(ev.figures["probe_mean+100"], image_grid(probe[:16]), atol=1e-6)
    assert torch.allclose(translated(noise, prior, 100.0).mean(), torch.tensor(100.0), atol=0.5)


def test_an_ex_post_sampler_fits_the_training_codes(model: NAGModule) -> None:
    real = _real()
    sampler = GaussianMixtureSampler(n_components=1)
    evaluate_sampling(model, real, model.prior, sampler, n_samples=16, probes=())
    with torch.no_grad():
        train_mean = model.encode(real.train).mean(0).double().numpy()
        test_mean = model.encode(real.test).mean(0).double().numpy()
    fitted = sampler.gmm.means_[0]
    assert abs(fitted - train_mean).max() < 1e-4
    assert abs(train_mean - test_mean).max() > 1e-2, "the test needs train and test codes apart"


def test_the_real_floor_compares_validation_with_test_images() -> None:
    real = _real()
    floor = real.baseline(seed=0)
    assert floor["swd_mean"] == pytest.approx(multiscale_swd(real.val, real.test, seed=0)["swd_mean"])
    assert floor["swd_mean"] != pytest.approx(multiscale_swd(real.train, real.test, seed=0)["swd_mean"])
    assert floor["swd_mean"] > 0
    other = real.baseline(seed=3)  # the seed reaches the SWD's projections; the default is seed 0
    assert other["swd_mean"] == pytest.approx(multiscale_swd(real.val, real.test, seed=3)["swd_mean"])
    assert other["swd_mean"] != floor["swd_mean"] and real.baseline() == floor


def test_best_is_the_best_checkpoint_not_the_last(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for k, v in last["state_dict"].items():
        if k.startswith("decoder") and v.is_floating_point():
            last["state_dict"][k] = torch.zeros_like(v)
    torch.save(last, run / "checkpoints" / "last.ckpt")  # the last state differs from the best one now
    best_file = RunDir(run).best_ckpt
    assert best_file is not None and best_file.name.startswith("best-")
    best, latest = load_model(RunDir(run)), load_model(RunDir(run), best=False)
    stored = torch.load(best_file, weights_only=True)["state_dict"]
    name = next(k for k in stored if k.startswith("decoder") and stored[k].is_floating_point())
    weight = best.state_dict()[name]
    assert torch.equal(weight, stored[name]) and not torch.equal(weight, latest.state_dict()[name])


def test_rows_stay_with_their_jobs_in_a_sweep_of_twelve(tmp_path: Path) -> None:
    from nag.analysis.compare import compare

    for job in range(12):
        d = tmp_path / str(job)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text("data: {}\n")
        (d / ".hydra" / "overrides.yaml").write_text(f"- prior.mean={job}\n")
        (d / "metrics.json").write_text(json.dumps({"val/recon": job / 100, "latent/mmd": job}))
    result = compare(tmp_path)
    assert [r["job"] for r in result.rows] == [str(j) for j in range(12)]
    assert all(r["prior.mean"] == r["job"] and r["val_recon"] == int(r["job"]) / 100 for r in result.rows)


class _Draws(L.Callback):
    """The first number each training step's prior-draw generator gives, and the validation codes' statistics."""

    def __init__(self) -> None:
        self.firsts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self.firsts.append(float(torch.rand(1, generator=pl_module._train_generator())))


def test_training_prior_draws_change_every_step_and_repeat_for_the_same_step(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg([*TINY_FIT, "+trainer.max_steps=6"], output_dir=tmp_path)
    draws = _Draws()
    _, _, model = fit_tiny(cfg, extra_callbacks=[draws], seed=None)
    assert len(set(draws.firsts)) == 6, "each step draws other prior samples"
    again = torch.Generator().manual_seed((model._draw_seed * 1_000_003 + 3) % 2**63)
    assert float(torch.rand(1, generator=again)) == draws.firsts[3], "step 3's draws are a function of the step"


def test_the_latent_diagnostics_read_validation_codes(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        [
            "debug=tiny",
            "callbacks=[latent]",
            "logger=none",
            "trainer.max_epochs=1",
            "trainer.num_sanity_val_steps=0",
            "trainer.enable_model_summary=false",
            "+trainer.enable_checkpointing=false",
        ],
        output_dir=tmp_path,
    )
    trainer, data, model = fit_tiny(cfg)
    logged = float(trainer.callback_metrics["latent/code_mean"])
    n = min(cfg.callbacks.latent.n, len(data.dataset("val")))
    with torch.no_grad():
        val = latent_fit(model.eval().encode(data.fixed_batch("val", n)[0]), model.prior)
        train = latent_fit(model.encode(data.fixed_batch("train", n)[0]), model.prior)
    assert logged == pytest.approx(val["code_mean"], abs=1e-6)
    assert logged != pytest.approx(train["code_mean"], abs=1e-6)


def test_an_atomic_write_syncs_its_data_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    """A rename that reaches the disk before the data would leave an empty file after a power cut: fsync first."""
    import nag.io.output as output

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(output.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(output.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    output.write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert events == ["fsync", "replace"] and json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_a_prior_used_for_probes_is_the_one_asked_for(model: NAGModule) -> None:
    """nag.evaluate prior=...: samples and probes come from that prior, not the model's own."""
    real, other = _real(), NormalPrior(model.prior.dim, mean=5.0, variance=0.5)
    ev = evaluate_sampling(model, real, other, n_samples=16, probes=(), seed=1)
    with torch.no_grad():
        expected = model.decode(fixed_draw(other, 16, 1))
    assert torch.allclose(ev.samples, expected, atol=1e-6)


def test_a_comparison_reads_each_jobs_row_grid_and_failure(
    tiny_run: Path, tmp_path: Path, cache_dir: Path, monkeypatch
):
    """Three copies of one finished run, the third's best checkpoint damaged: rows, the default metric, one 4 x 4
    grid per readable job (the same fixed draw, so equal for equal models), and the damaged job named unreadable;
    with evaluate the evaluation's columns, the real floor and the sample metric."""
    from nag.analysis.compare import EVALUATION_COLUMNS, TRAINING_COLUMNS, compare, markdown, table

    monkeypatch.setenv("NAG_CACHE_DIR", str(cache_dir))
    sweep = tmp_path / "sweep"
    for job in range(3):
        shutil.copytree(tiny_run, sweep / str(job))
        overrides = sweep / str(job) / ".hydra" / "overrides.yaml"
        overrides.write_text(overrides.read_text() + f"- prior.mean={job}\n")
    damaged = RunDir(sweep / "2").best_ckpt
    damaged.write_bytes(b"not a checkpoint")
    shutil.copytree(tiny_run, sweep / "3", ignore=shutil.ignore_patterns("*.ckpt"))  # no checkpoint, no prior.mean
    shutil.copytree(tiny_run, sweep / "4")
    (sweep / "4" / ".hydra" / "config.yaml").write_text("- not a mapping\n")  # unreadable, with a checkpoint
    mmd = json.loads((tiny_run / "metrics.json").read_text())["latent/mmd"]

    result = compare(sweep)
    assert (result.metric, result.keys, result.baseline) == ("latent_mmd", ["prior.mean"], {})
    assert result.metric_columns == list(TRAINING_COLUMNS) and result.samplers is None
    assert [(r["job"], r["prior.mean"], r["status"]) for r in result.rows] == [
        ("0", "0", "ok"),
        ("1", "1", "ok"),
        ("2", "2", "unreadable"),
        ("3", "", "ok"),
        ("4", "", "unreadable"),
    ]
    assert result.grids[3] is None and result.grids[4] is None
    assert [r["job"] for r in compare(sweep / "0").rows] == ["0"]  # a run dir itself: named by its folder
    run = load_run(sweep / "0")  # the API's door: the best checkpoint, on the CPU, unless asked otherwise
    assert run.checkpoint == RunDir(sweep / "0").best_ckpt != RunDir(sweep / "0").last_ckpt
    assert load_run(sweep / "0", best=False).checkpoint == RunDir(sweep / "0").last_ckpt
    assert run.model.device.type == "cpu" and open_run(sweep / "0").model.device.type == "cpu"
    assert run.path == sweep / "0" and open_run(sweep / "0").checkpoint == run.checkpoint
    loose = tmp_path / "loose.ckpt"  # a checkpoint outside any run dir: a run without a path
    shutil.copy(run.checkpoint, loose)
    assert (load_run(loose).path, load_run(loose).checkpoint) == (None, loose)
    with pytest.raises(UserInputError, match=r"^checkpoint=.*/2/checkpoints/best-.*is not a readable checkpoint"):
        load_run(sweep / "2")
    assert [r["job"] for r in compare(tmp_path).rows][:2] == ["sweep/0", "sweep/1"]  # below: by the path from root
    with pytest.raises(UserInputError, match="--metric sample_swd is not a column.*add --evaluate"):
        compare(sweep, metric="sample_swd")
    assert result.rows[0]["latent_mmd"] == pytest.approx(mmd) and result.rows[0]["reason"] == ""
    assert str(damaged.name) in result.rows[2]["reason"]
    assert result.grids[0].shape == result.grids[1].shape == (3, 4 * 16 + 5 * 2, 4 * 16 + 5 * 2)
    assert torch.equal(result.grids[0], result.grids[1]) and result.grids[2] is None
    other_seed = compare(sweep, seed=1)
    assert not torch.equal(other_seed.grids[0], result.grids[0])
    assert "2 unreadable: " in table(result) and "| 2 | 2 | unreadable |" in markdown(result)

    evaluated = compare(sweep, evaluate=True, n_eval=16, n_samples=16, fid={"enabled": False})
    assert evaluated.metric == "sample_swd"
    assert evaluated.metric_columns == [*TRAINING_COLUMNS, *EVALUATION_COLUMNS]
    assert set(evaluated.baseline) == {"sample_swd", "diversity"} and evaluated.baseline["sample_swd"] > 0
    assert evaluated.rows[0]["sample_swd"] == pytest.approx(evaluated.rows[1]["sample_swd"])
    assert evaluated.rows[2]["status"] == "unreadable" and evaluated.rows[2].get("sample_swd") is None
    assert "real vs real: sample_swd" in table(evaluated)

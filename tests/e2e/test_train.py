"""End to end through the real entry points: tiny runs, TensorBoard contents, checkpoints, resume, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nag.config.errors import MissingFileError
from nag.train import train
from nag.training.build import build_model
from nag.training.module import NAGModule
from tests.helpers import TINY, run_module

SIDE = 16 + 2  # a 16-px image plus make_grid's 2-px padding
UP = 4  # 16-px faces are shown 4x larger (64 px), pixels kept sharp
GRID_SHAPES = {  # tag -> (height, width) of the PNG, for the tiny preset's callback sizes
    "images/reconstructions": (UP * (2 * SIDE + 2), UP * (8 * SIDE + 2)),  # originals over reconstructions
    "images/interpolation": (UP * (2 * SIDE + 2), UP * (11 * SIDE + 2)),  # 2 pairs x 11 steps
    "images/samples": (UP * (2 * SIDE + 2), UP * (8 * SIDE + 2)),  # 16 samples, 8 per row
    "images/probe_mean+100": (UP * (SIDE + 2), UP * (8 * SIDE + 2)),
    "images/probe_mean-100": (UP * (SIDE + 2), UP * (8 * SIDE + 2)),
}


def events(run_dir: Path) -> EventAccumulator:
    (tb,) = {p.parent for p in (run_dir / "tensorboard").rglob("events.out.tfevents.*")}
    ea = EventAccumulator(str(tb), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    ea.Reload()
    return ea


def test_tiny_run_logs_grids_scalars_and_a_reloadable_checkpoint(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg([*TINY, "prior=normal_mean-3"])
    metrics = train(cfg)

    for key in (
        "train/recon",
        "train/matching",
        "train/loss",
        "val/recon",
        "val/matching",
        "val/loss",
        "test/loss",
        "latent/mmd",
        "latent/code_mean",
    ):
        assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN
    assert metrics["latent/prior_mean"] == pytest.approx(-3.0)
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)

    ea = events(tmp_path)
    tags = ea.Tags()
    for tag, (h, w) in GRID_SHAPES.items():
        imgs = ea.Images(tag)
        assert len(imgs) == cfg.trainer.max_epochs, f"{tag} must be drawn every validation epoch"
        assert (imgs[-1].height, imgs[-1].width) == (h, w), tag
    assert "latent/codes" in tags["histograms"]
    # The Custom Scalars layout puts each code statistic beside the prior's.
    (layout,) = ea.Tensors("custom_scalars__config__")
    assert b"latent/code_variance" in layout.tensor_proto.string_val[0]
    assert b"latent/prior_variance" in layout.tensor_proto.string_val[0]
    # The projector holds the validation codes with thumbnails and attribute labels.
    tb_dir = next((tmp_path / "tensorboard").iterdir())
    config = (tb_dir / "projector_config.pbtxt").read_text()
    assert "latent_codes" in config and "sprite" in config and "metadata" in config
    (meta,) = tb_dir.glob("*/latent_codes/metadata.tsv")
    rows = meta.read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["index", "Pale_Skin"] and len(rows) == 1 + 64
    (tensors,) = tb_dir.glob("*/latent_codes/tensors.tsv")
    assert len(tensors.read_text().splitlines()[0].split("\t")) == 8, "one column per latent dimension"
    for s in ("train/recon_step", "val/loss", "latent/mmd", "latent/code_variance", "latent/prior_variance"):
        assert s in tags["scalars"], s

    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and len(list((tmp_path / "checkpoints").glob("best-epoch*.ckpt"))) == 1
    model = NAGModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    assert torch.all(model.prior.mean == -3) and torch.all(model.prior.variance == 2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    z = model.prior.sample(4, generator=g())
    assert z.mean().item() == pytest.approx(-3, abs=1.5)
    with torch.no_grad():
        assert torch.equal(model.sample(4, generator=g()), model.decode(z))


def test_checkpoint_stores_a_non_default_prior(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        [*TINY, "prior=laplace", "prior.mean=1.5", "matching=swd", "trainer.max_epochs=1", "test=false", "logger=none"]
    )
    train(cfg)
    model = NAGModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu")
    assert type(model.prior).__name__ == "LaplacePrior" and torch.all(model.prior.mean == 1.5)
    assert type(model.matching).__name__ == "SlicedWasserstein"


def test_resume_continues_from_the_checkpoint(compose_cfg, tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(compose_cfg([*TINY, "trainer.max_epochs=1", "test=false"], output_dir=first))
    steps_per_epoch = torch.load(first / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    second = tmp_path / "second"
    train(
        compose_cfg(
            [*TINY, "trainer.max_epochs=2", "test=false", f"ckpt_path={first}/checkpoints/last.ckpt"], output_dir=second
        )
    )
    state = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["epoch"] == 1 and state["global_step"] == 2 * steps_per_epoch


def test_missing_checkpoint_is_explained(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"ckpt_path=.*nope.ckpt does not exist"):
        train(compose_cfg([*TINY, f"ckpt_path={tmp_path}/nope.ckpt"]))


@pytest.mark.slow
def test_cli_runs_from_any_directory(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module("nag.train", [*TINY, "prior=normal_mean-3", "trainer.max_epochs=1"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "tensorboard").is_dir() and (run_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_multirun_over_prior_means_gives_two_named_runs(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module(
        "nag.train", ["-m", *TINY, "trainer.max_epochs=1", "test=false", "prior.mean=-3,0"], tmp_path, cache_dir
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name for j in jobs] == ["0", "1"]
    # TensorBoard run names carry the overrides (shortened readably when long), so the two runs are told apart.
    names = [[p.name for p in (j / "tensorboard").iterdir()] for j in jobs]
    assert [len(n) for n in names] == [1, 1]
    assert "mean=-3," in names[0][0] and "mean=0," in names[1][0], names
    for j, mean in zip(jobs, (-3.0, 0.0), strict=True):
        m = NAGModule.load_from_checkpoint(j / "checkpoints" / "last.ckpt", map_location="cpu")
        assert torch.all(m.prior.mean == mean)


@pytest.mark.slow
def test_fast_dev_run_preset(tmp_path: Path, cache_dir: Path) -> None:
    r = run_module("nag.train", ["debug=fdr", "data=synthetic_tiny"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "fast_dev_run" in r.stderr + r.stdout


def test_optimized_metric_single_multi_and_missing() -> None:
    from nag.config.errors import UserInputError
    from nag.train import optimized

    metrics = {"val/recon": 0.1, "latent/mmd": 0.02}
    assert optimized(metrics, None) is None
    assert optimized(metrics, "val/recon") == 0.1
    assert optimized(metrics, ["val/recon", "latent/mmd"]) == (0.1, 0.02)
    with pytest.raises(UserInputError, match=r"optimized_metric names \['val/fid'\]"):
        optimized(metrics, ["val/fid"])


@pytest.mark.slow
def test_optuna_search_writes_a_pareto_front(tmp_path: Path, cache_dir: Path) -> None:
    import yaml

    args = ["-m", "hparams_search=optuna", *TINY, "trainer.max_epochs=1", "test=false", "hydra.sweeper.n_trials=2"]
    r = run_module("nag.train", args, tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    (best, *_) = result["solutions"]
    assert set(best["params"]) == {"matching.weight", "model.optimizer.lr"} and len(best["values"]) == 2
    assert 0.01 <= best["params"]["matching.weight"] <= 100


def test_cluster_launcher_composes(compose_cfg) -> None:
    cfg = compose_cfg([*TINY, "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=60"])
    assert "submitit" in cfg.hydra.launcher._target_ and cfg.hydra.launcher.timeout_min == 60


def test_validation_loss_is_deterministic_for_a_fixed_model(compose_cfg) -> None:
    import lightning as L
    from hydra.utils import instantiate

    cfg = compose_cfg([*TINY, "matching=swd"])
    model = build_model(cfg)
    dm = instantiate(cfg.data)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    first, second = trainer.validate(model, dm, verbose=False), trainer.validate(model, dm, verbose=False)
    assert first[0]["val/matching"] == second[0]["val/matching"] > 0


@pytest.mark.slow
def test_a_run_prints_no_third_party_noise_but_keeps_nags_warnings(tmp_path: Path, cache_dir: Path) -> None:
    # data.n_val=3 makes nag warn (once) that the figures use fewer validation images than configured.
    args = [*TINY, "trainer.max_epochs=1", "test=false", "data.n_val=3", "trainer.enable_model_summary=true"]
    r = run_module("nag.train", args, tmp_path, cache_dir, fresh=True)  # import-time warnings are printed too
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "deprecat" not in out.lower() and "💡 Tip" not in out and "v_num" not in out
    assert "interpolating 1 pair(s) instead of 2" in out, "nag's own warnings stay visible"
    assert out.count("GPU available") == 1, "Lightning's messages are printed once, not by two handlers"
    encoder_row = next(line for line in out[out.index("FLOPs") :].splitlines() if "Encoder" in line)
    flops = encoder_row.split("│")[6].strip()  # columns: | index | name | type | params | mode | FLOPs | ...
    assert flops not in ("0", ""), f"the FLOPs column is measured: {encoder_row}"


@pytest.mark.parametrize("module", ["nag.train", "nag.evaluate", "nag.report", "nag.compare", "nag.bench"])
def test_every_entry_point_explains_itself(module: str, tmp_path: Path, cache_dir: Path) -> None:
    """--help: what the command does, its commonest commands, and for the Hydra entry points the config groups it
    really uses (nag.train does not use the sampler group; nag.evaluate does)."""
    r = run_module(module, ["--help"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout
    assert f"python -m {module}" in text
    commands = [line for line in text.splitlines() if line.strip().startswith("python -m nag.")]
    assert len(commands) >= 3, text
    groups = {line.split()[0] for line in text.split("Config groups", 1)[-1].splitlines()[1:] if line.startswith("  ")}
    if module == "nag.train":
        assert {"data", "model", "prior", "matching", "trainer", "callbacks", "logger", "experiment"} <= groups
        assert "sampler" not in groups and "hydra" not in groups
        assert "normal_mean-3" in text and "mmd_imq" in text  # the options of each group
    elif module == "nag.evaluate":
        assert groups == {"sampler", "prior", "data"}
    assert not (tmp_path / "outputs").exists()  # asking for help starts no run

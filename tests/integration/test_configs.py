"""Every config in every group composes and instantiates; presets and overrides do what they say."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from nag import CONF_DIR
from nag.model.matching import PriorMatching
from nag.model.priors import NormalPrior, Prior
from nag.training.build import build_model
from nag.training.module import NAGModule
from tests.helpers import TINY


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("prior", options("prior"))
def test_every_prior_instantiates_and_samples(compose_cfg, prior) -> None:
    cfg = compose_cfg([f"prior={prior}"])
    p = instantiate(cfg.prior)
    assert isinstance(p, Prior) and p.dim == cfg.model.latent_dim
    assert p.sample(5).shape == (5, cfg.model.latent_dim)


@pytest.mark.parametrize("matching", options("matching"))
def test_every_matching_instantiates_and_evaluates(compose_cfg, matching) -> None:
    cfg = compose_cfg([f"matching={matching}"])
    m = instantiate(cfg.matching)
    p = instantiate(cfg.prior)
    assert isinstance(m, PriorMatching) and m.weight >= 0
    assert torch.isfinite(m(torch.randn(16, p.dim), p))


OTHER = [(g, o) for g in ("trainer", "callbacks", "logger", "debug", "experiment", "data") for o in options(g)]


@pytest.mark.parametrize(("group", "option"), OTHER, ids=[f"{g}={o}" for g, o in OTHER])
def test_every_option_of_the_other_groups_composes_and_instantiates(compose_cfg, group, option) -> None:
    cfg = compose_cfg([f"{group}={option}"])
    if group == "trainer":
        if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
            assert cfg.trainer.precision in ("16-mixed", "bf16-mixed")
            pytest.skip(f"composes; instantiating trainer={option} needs a GPU")
        instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    elif group in ("callbacks", "logger"):
        for c in cfg[group].values():
            instantiate(c)
    elif group == "data":
        assert instantiate(cfg.data).image_size == cfg.data.image_size
    else:
        build_model(cfg)
    instantiate(cfg.data)  # the data module of every preset is valid too


def test_default_model_is_the_reports_and_reloadable_from_hparams(compose_cfg) -> None:
    cfg = compose_cfg([])
    model = build_model(cfg)
    assert isinstance(model, NAGModule) and model.hparams.latent_dim == 64
    clone = NAGModule(**model.hparams)  # what load_from_checkpoint does, with no config at hand
    assert torch.equal(clone.prior.mean, model.prior.mean)


@pytest.mark.parametrize("sampler", options("sampler"))
def test_every_sampler_composes_into_the_evaluate_config(compose_cfg, sampler) -> None:
    cfg = compose_cfg([f"sampler={sampler}", "ckpt_path=x.ckpt"], config="evaluate")
    s = instantiate(cfg.sampler)
    assert hasattr(s, "fit") and hasattr(s, "sample") and cfg.get("prior") is None and cfg.get("data") is None


def test_prior_overrides_from_the_command_line(compose_cfg) -> None:
    p = instantiate(compose_cfg(["prior=normal_mean-3"]).prior)
    assert isinstance(p, NormalPrior) and torch.all(p.mean == -3) and torch.all(p.variance == 2)
    p = instantiate(compose_cfg(["prior.mean=-5", "prior.variance=0.5"]).prior)
    assert torch.all(p.mean == -5) and torch.all(p.variance == 0.5)


def test_latent_dim_mismatch_is_reported(compose_cfg) -> None:
    cfg = compose_cfg(["prior.dim=3"])
    with pytest.raises(Exception, match="the prior's latent dimension 3 differs from latent_dim=64"):
        build_model(cfg)


def test_tiny_preset_is_small(compose_cfg) -> None:
    cfg = compose_cfg(TINY)
    assert cfg.data.image_size == 16 and cfg.data.n_train <= 256 and cfg.trainer.max_epochs <= 2


def test_run_directories_of_each_entry_point(compose_cfg) -> None:
    assert compose_cfg([]).hydra.run.dir.startswith("outputs/2")
    assert compose_cfg([]).hydra.sweep.dir.startswith("multirun/")
    assert compose_cfg(["ckpt_path=x.ckpt"], config="evaluate").hydra.run.dir.startswith("outputs/evaluate/")


def test_the_list_of_matching_distances_lives_in_conf_matching_alone() -> None:
    """conf/matching/ names every distance; each has its benchmark arm (plain is matching=none), the benchmark sweeps
    every arm (glob), and the bench times every distance: adding a distance is one class and its yamls."""
    from omegaconf import OmegaConf

    from nag.bench.cli import TARGETS
    from nag.bench.parts import DISTANCES

    matchings = {p.stem for p in (CONF_DIR / "matching").glob("*.yaml")}
    arms = {}
    for path in (CONF_DIR / "arm").glob("*.yaml"):
        overrides = [d for d in OmegaConf.load(path).defaults if isinstance(d, dict) or OmegaConf.is_dict(d)]
        (chosen,) = [v for d in overrides for k, v in dict(d).items() if k == "override /matching"]
        arms[path.stem] = chosen
    assert set(arms.values()) == matchings and arms["plain"] == "none"
    assert all(arm == m for arm, m in arms.items() if arm != "plain"), "an arm is named after its distance"
    for name in ("benchmark", "benchmark_lambda"):
        assert OmegaConf.load(CONF_DIR / "experiment" / f"{name}.yaml").hydra.sweeper.params.arm == "glob(*)"
    assert set(DISTANCES) == matchings - {"none"}
    assert {k for s, k in TARGETS if s == "matching"} - {"step_s"} == set(DISTANCES)


def test_the_best_checkpoints_name_is_the_one_the_run_dir_looks_for() -> None:
    import fnmatch

    from omegaconf import OmegaConf

    from nag.runs.run_dir import BEST_PATTERN

    template = OmegaConf.load(CONF_DIR / "callbacks" / "model_checkpoint.yaml").model_checkpoint.filename
    assert fnmatch.fnmatch(template.format(epoch=7) + ".ckpt", BEST_PATTERN), (template, BEST_PATTERN)


def test_the_moonshot_is_its_pages_best_setting_over_three_seeds_and_its_search_is_kept(compose_cfg) -> None:
    """docs/results/moonshot.md reproduces its best row with `experiment=moonshot`: SSIM 0.05 on code 32, plain
    MSE, 15 epochs, Cramér–Wold at N(0, 2), swept over three training seeds (the spread nag.compare reports)."""
    from omegaconf import OmegaConf

    cfg = compose_cfg(["experiment=moonshot", "arm=cramer_wold"])
    assert (cfg.model.latent_dim, cfg.model.recon_emphasis, cfg.model.recon_ssim) == (32, 0.0, 0.05)
    assert (cfg.model.recon_frequency, cfg.trainer.max_epochs, cfg.prior.variance) == (0.0, 15, 2.0)
    assert cfg.matching._target_.endswith("CramerWold")
    best = OmegaConf.load(CONF_DIR / "experiment" / "moonshot.yaml").hydra.sweeper.params
    assert dict(best) == {"arm": "cramer_wold", "prior.mean": 0, "seed": "42,1,2"}
    search = OmegaConf.load(CONF_DIR / "experiment" / "moonshot_search.yaml").hydra.sweeper.params
    assert (search["model.recon_emphasis"], search["model.latent_dim"]) == ("0,3", "32,64")
    ssim = OmegaConf.load(CONF_DIR / "experiment" / "moonshot_ssim.yaml").hydra.sweeper.params
    assert (ssim["model.recon_ssim"], ssim["seed"]) == ("0.02,0.05,0.1,0.2", "42,1,2")
    cfg = compose_cfg(["experiment=moonshot_ssim", "model.recon_ssim=0.1"])
    assert (cfg.model.latent_dim, cfg.trainer.max_epochs, cfg.model.recon_ssim) == (32, 15, 0.1)

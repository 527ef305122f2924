"""NAGModule in process: loading checkpoints (what is refused and how it is said), the divergence message, the
draw seed, the training-term logging and the checks of its constructor. Fast: tiny nets, no dataset for most."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
from omegaconf import OmegaConf

from nag.config.errors import DivergenceError, MissingFileError, UserInputError
from nag.runs.checkpoint_file import CheckpointError
from nag.runs.trusted import UntrustedConfigError
from nag.training.build import build_model
from nag.training.distributed import gather_codes
from nag.training.loading import HPARAM_KEYS
from nag.training.module import NAGModule, _plain
from nag.training.term_logging import divergence_message
from tests.helpers import TINY_FIT, fit_tiny


@pytest.fixture
def tiny(compose_cfg) -> NAGModule:  # noqa: ANN001
    """The tiny model (16 px, latent 8) matched to N(−3, 2) with λ = 0.37, untrained."""
    cfg = compose_cfg(["debug=tiny", "prior=normal_mean-3", "matching=mmd_imq", "matching.weight=0.37"])
    torch.manual_seed(0)
    return build_model(cfg)


def _save(model: NAGModule, path: Path, **changes: object) -> Path:
    """A checkpoint as nag.train writes it (its state dict and hyper-parameters), with ``changes`` applied."""
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "epoch": 0}
    ckpt.update(changes)
    torch.save(ckpt, path)
    return path


# --- loading checkpoints ----------------------------------------------------------------------------------------


def test_a_checkpoint_rebuilds_the_same_model(tiny: NAGModule, tmp_path: Path) -> None:
    path = _save(tiny, tmp_path / "m.ckpt")
    with torch.no_grad():
        tiny.eval()
        loaded = NAGModule.load_from_checkpoint(path).eval()
        assert set(loaded.hparams) == set(HPARAM_KEYS)
        for k, v in tiny.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
        assert loaded.prior.mean.mean().item() == pytest.approx(-3.0)
        assert loaded.matching.weight == pytest.approx(0.37)
        x = torch.rand(4, 3, 16, 16)
        assert torch.equal(loaded(x), tiny(x))
    assert loaded.compile_nets is False and loaded.channels_last == "auto"


def test_load_replaces_hyper_parameters_and_takes_how_to_compute(tiny: NAGModule, tmp_path: Path) -> None:
    path = _save(tiny, tmp_path / "m.ckpt")
    prior = {**tiny.hparams.prior, "mean": 5.0}
    loaded = NAGModule.load_from_checkpoint(path, prior=prior, compile=True, channels_last=False)
    assert loaded.prior.mean.mean().item() == pytest.approx(5.0)
    assert loaded.hparams.prior["mean"] == 5.0  # the stored hyper-parameters say what was built
    assert loaded.compile_nets is True and loaded.channels_last is False
    assert "compile" not in loaded.hparams and "channels_last" not in loaded.hparams


def test_load_is_strict_unless_told_and_names_the_file(tiny: NAGModule, tmp_path: Path) -> None:
    sd = tiny.state_dict()
    dropped = next(k for k in sd if k.startswith("decoder"))
    path = _save(tiny, tmp_path / "m.ckpt", state_dict={k: v for k, v in sd.items() if k != dropped})
    with pytest.raises(CheckpointError) as err:
        NAGModule.load_from_checkpoint(path)
    assert str(err.value).startswith(f"{path} holds weights of another architecture") and dropped in str(err.value)
    loose = NAGModule.load_from_checkpoint(path, strict=False)
    assert all(torch.equal(loose.state_dict()[k], v) for k, v in sd.items() if k != dropped)


def test_load_moves_the_model_to_map_location(tiny: NAGModule, tmp_path: Path) -> None:
    path = _save(tiny, tmp_path / "m.ckpt")
    assert {p.device.type for p in NAGModule.load_from_checkpoint(path).parameters()} == {"cpu"}
    meta = NAGModule.load_from_checkpoint(path, map_location="meta")  # any device torch knows, without memory
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    assert {b.device.type for b in meta.buffers()} == {"meta"}


@pytest.mark.parametrize("key", ["recon_emphasis", "recon_ssim", "recon_frequency"])
def test_reconstruction_weights_are_stored_optional_for_older_checkpoints_and_checked(
    key: str, tiny: NAGModule, tmp_path: Path
) -> None:
    hp = dict(tiny.hparams)
    assert hp[key] == 0.0
    path = _save(tiny, tmp_path / "m.ckpt", hyper_parameters={**hp, key: 3.0})
    assert NAGModule.load_from_checkpoint(path).hparams[key] == 3.0
    # written before the key existed: the plain MSE it was trained with
    old = _save(tiny, tmp_path / "old.ckpt", hyper_parameters={k: v for k, v in hp.items() if k != key})
    assert NAGModule.load_from_checkpoint(old).hparams[key] == 0.0
    for bad in (-1.0, "os.system"):
        crafted = _save(tiny, tmp_path / "bad.ckpt", hyper_parameters={**hp, key: bad})
        with pytest.raises(UserInputError, match=key):
            NAGModule.load_from_checkpoint(crafted)


@pytest.mark.parametrize("extra", [{"_instantiator": "os.system"}, {"latent_dim": 8, "seed": 3}])
def test_load_refuses_hyper_parameters_nag_does_not_store(tiny: NAGModule, tmp_path: Path, extra: dict) -> None:
    path = _save(tiny, tmp_path / "m.ckpt", hyper_parameters={**dict(tiny.hparams), **extra})
    unknown = sorted(set(extra) - set(HPARAM_KEYS))
    with pytest.raises(UntrustedConfigError) as err:
        NAGModule.load_from_checkpoint(path)
    assert str(err.value) == (
        f"checkpoint {path} stores unexpected hyper-parameters {unknown}; nag checkpoints hold only "
        f"{list(HPARAM_KEYS)}. Refused."
    )


def test_load_refuses_an_unknown_keyword_the_same_way(tiny: NAGModule, tmp_path: Path) -> None:
    path = _save(tiny, tmp_path / "m.ckpt")
    with pytest.raises(UntrustedConfigError, match=r"unexpected hyper-parameters \['dropout'\]"):
        NAGModule.load_from_checkpoint(path, dropout=0.5)


def test_load_refuses_code_in_a_stored_config_and_names_the_file(tiny: NAGModule, tmp_path: Path) -> None:
    hp = dict(tiny.hparams)
    path = _save(tiny, tmp_path / "m.ckpt", hyper_parameters={**hp, "prior": {**hp["prior"], "_target_": "os.system"}})
    with pytest.raises(UntrustedConfigError, match=rf"checkpoint {path} hyper_parameters"):
        NAGModule.load_from_checkpoint(path)


def test_a_missing_checkpoint_is_named_by_its_config_key(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"^checkpoint=.*nope\.ckpt does not exist"):
        NAGModule.load_from_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(MissingFileError, match=r"^ckpt_path=.*nope\.ckpt does not exist"):
        NAGModule.load_from_checkpoint(tmp_path / "nope.ckpt", _key="ckpt_path")


def test_load_weights_names_what_differs_in_one_message(tiny: NAGModule) -> None:
    sd = tiny.state_dict()
    keys = list(sd)
    # four keys missing: three are named, then "..."
    partial = {k: v for k, v in sd.items() if k not in keys[:4]}
    with pytest.raises(CheckpointError) as err:
        tiny.load_weights(partial, "run/last.ckpt")
    msg = str(err.value)
    assert msg.startswith("run/last.ckpt holds weights of another architecture than the configured model (")
    assert f"(missing: {keys[0]}, {keys[1]}, {keys[2]} ...)" in msg
    assert keys[3] not in msg and "its run's .hydra/config.yaml" in msg
    # an extra key and a different shape, each named, in that order; exactly three missing keys: no "..."
    other = {**{k: v for k, v in sd.items() if k not in keys[:3]}, "head.weight": torch.zeros(2)}
    other[keys[5]] = torch.zeros(1, *sd[keys[5]].shape)
    with pytest.raises(CheckpointError) as err:
        tiny.load_weights(other, "x.ckpt")
    assert f"(different shapes: {keys[5]}; missing: {keys[0]}, {keys[1]}, {keys[2]}; unexpected: head.weight)" in str(
        err.value
    )


def test_load_weights_not_strict_loads_what_matches_but_never_a_different_shape(tiny: NAGModule) -> None:
    sd = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in tiny.state_dict().items()}
    first = next(k for k in sd if k.startswith("encoder") and k.endswith("weight"))
    partial = {k: v for k, v in sd.items() if k != first}
    tiny.load_weights({**partial, "head.bias": torch.zeros(3)}, "x.ckpt", strict=False)  # no error
    now = tiny.state_dict()
    assert all(torch.equal(now[k], v) for k, v in partial.items())
    assert not torch.equal(now[first], sd[first])  # the missing one keeps its own value
    with pytest.raises(CheckpointError, match="different shapes"):
        tiny.load_weights({**partial, first: torch.zeros(1)}, "x.ckpt", strict=False)
    tiny.load_weights(sd, "x.ckpt")  # an exact match loads strictly
    assert torch.equal(tiny.state_dict()[first], sd[first])


# --- what the constructor checks and stores ---------------------------------------------------------------------


def test_interpolation_defaults_to_the_reports_11_steps(tiny: NAGModule) -> None:
    x = torch.rand(2, 3, 16, 16)
    assert tiny.eval().interpolate(x, x.flip(0)).shape == (2, 11, 3, 16, 16)
    with pytest.raises(
        ValueError,
        match=r"^interpolate needs two batches of the same shape, got \(2, 3, 16, 16\) "
        r"and \(1, 3, 16, 16\)\.$",
    ):
        tiny.interpolate(x, x[:1])


@pytest.mark.parametrize("part", ["encoder", "decoder", "prior"])
def test_a_latent_size_that_disagrees_is_named(compose_cfg, part: str) -> None:  # noqa: ANN001
    cfg = compose_cfg(["debug=tiny"])
    parts = {"encoder": cfg.model.encoder, "decoder": cfg.model.decoder, "prior": cfg.prior}
    parts[part] = OmegaConf.merge(parts[part], {"dim" if part == "prior" else "latent_dim": 5})
    with pytest.raises(ValueError, match=rf"^NAGModule: the {part}'s latent dimension 5 differs from latent_dim=8\.$"):
        NAGModule(8, parts["encoder"], parts["decoder"], parts["prior"], cfg.matching, cfg.model.optimizer)


def test_channels_last_accepts_true_false_auto_only(compose_cfg) -> None:  # noqa: ANN001
    cfg = compose_cfg(["debug=tiny"])
    args = (8, cfg.model.encoder, cfg.model.decoder, cfg.prior, cfg.matching, cfg.model.optimizer)
    with pytest.raises(ValueError, match=r"^NAGModule: channels_last='yes' must be true, false or auto\.$"):
        NAGModule(*args, channels_last="yes")
    for value in (True, False, "auto"):
        assert NAGModule(*args, channels_last=value).channels_last == value


def test_configure_model_sets_the_memory_format(compose_cfg) -> None:  # noqa: ANN001
    cfg = compose_cfg(["debug=tiny"])
    args = (8, cfg.model.encoder, cfg.model.decoder, cfg.prior, cfg.matching, cfg.model.optimizer)
    conv = lambda m: next(p for p in m.encoder.parameters() if p.dim() == 4)  # noqa: E731
    for value, expected in (
        (True, torch.channels_last),
        ("auto", torch.contiguous_format),
        (False, torch.contiguous_format),
    ):
        model = NAGModule(*args, channels_last=value)
        model.configure_model()  # outside a Trainer: the model's own device, a CPU here ("auto" → contiguous)
        assert model._memory_format == expected
        w = conv(model)
        assert w.is_contiguous(memory_format=expected) and (expected == torch.contiguous_format or w.stride(1) == 1)


def test_configure_model_compiles_in_place_once_and_only_when_asked(compose_cfg) -> None:  # noqa: ANN001
    cfg = compose_cfg(["debug=tiny"])
    args = (8, cfg.model.encoder, cfg.model.decoder, cfg.prior, cfg.matching, cfg.model.optimizer)
    plain = NAGModule(*args)
    plain.configure_model()
    assert plain.encoder._compiled_call_impl is None and plain.decoder._compiled_call_impl is None
    model = NAGModule(*args, compile=True)
    keys = list(model.state_dict())
    model.configure_model()  # nn.Module.compile: nothing is traced until the first call
    compiled = model.encoder._compiled_call_impl
    assert compiled is not None and model.decoder._compiled_call_impl is not None
    model.configure_model()  # e.g. a second fit of the same module: the compiled encoder is kept
    assert model.encoder._compiled_call_impl is compiled
    assert list(model.state_dict()) == keys  # checkpoints do not change


def test_hyper_parameters_are_resolved_plain_containers(compose_cfg) -> None:  # noqa: ANN001
    assert _plain(None) is None
    plain = _plain(OmegaConf.create({"a": {"b": 1}, "c": "${a.b}"}))
    assert plain == {"a": {"b": 1}, "c": 1} and type(plain) is dict and type(plain["a"]) is dict
    d = {"x": 1}
    assert _plain(d) == d and _plain(d) is not d
    cfg = compose_cfg(["debug=tiny", "prior=normal_mean-3"])
    model = NAGModule(8, cfg.model.encoder, cfg.model.decoder, cfg.prior, cfg.matching, cfg.model.optimizer)
    assert type(model.hparams.prior) is dict and model.hparams.prior["mean"] == -3
    assert model.hparams.scheduler is None and model.hparams.latent_dim == 8
    assert model.example_input_array.shape == (2, 3, 16, 16)


# --- the step: divergence, the draw seed --------------------------------------------------------------------------


def _terms(recon: float, matching: float, loss: float) -> dict[str, torch.Tensor]:
    return {"recon": torch.tensor(recon), "matching": torch.tensor(matching), "loss": torch.tensor(loss)}


@pytest.mark.parametrize(
    ("terms", "stage", "what"),
    [
        (_terms(float("nan"), 1.0, float("nan")), "train", "in training at step 0 (epoch 0) the recon term is"),
        (_terms(1.0, float("inf"), float("inf")), "val", "in validation at step 0 (epoch 0) the matching term is"),
        (
            _terms(float("nan"), float("nan"), float("nan")),
            "test",
            "in testing at step 0 (epoch 0) the recon and the matching terms are",
        ),
        (_terms(0.5, 2e38, float("inf")), "train", "matching.weight × matching overflows (weight 0.37)"),
    ],
)
def test_the_divergence_message_says_which_term_and_where(tiny: NAGModule, terms: dict, stage: str, what: str) -> None:
    msg = divergence_message(terms, stage, tiny.global_step, tiny.current_epoch, tiny.matching.weight)
    assert msg.startswith("training diverged: ")
    assert what in msg
    if "overflows" in what:
        assert "non-finite" not in msg and "(recon=0.5, matching=2e+38)" in msg
    else:
        assert msg.count("non-finite") == 1
    assert msg.endswith("Lower model.optimizer.lr or matching.weight, or check the prior's mean and variance.")


def test_a_non_finite_loss_stops_the_step(tiny: NAGModule) -> None:
    tiny.matching.weight = float("inf")  # a finite distance times an infinite weight
    with pytest.raises(DivergenceError, match=r"in validation at step 0 .* overflows \(weight inf\)"):
        tiny._step((torch.rand(8, 3, 16, 16), torch.zeros(8, 1)), "val", 0)
    tiny.matching.weight = 0.37
    with pytest.raises(DivergenceError, match=r"in testing .* the recon and the matching terms are non-finite"):
        tiny._step(torch.full((8, 3, 16, 16), float("nan")), "test", 0)


def test_the_draw_seed_fixes_the_training_draws_and_travels_in_checkpoints(tiny: NAGModule) -> None:
    assert tiny._train_generator() is None  # no seed yet: the global stream
    tiny._draw_seed = 11
    a, b = tiny._train_generator(), tiny._train_generator()
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    assert a.initial_seed() == 11 * 1_000_003  # step 0
    ckpt: dict = {}
    tiny.on_save_checkpoint(ckpt)
    assert ckpt == {"nag_draw_seed": 11}
    tiny._draw_seed = 12
    assert not torch.equal(
        torch.rand(5, generator=tiny._train_generator()), torch.rand(5, generator=b.manual_seed(11 * 1_000_003))
    )
    tiny.on_load_checkpoint(ckpt)
    assert tiny._draw_seed == 11
    tiny.on_load_checkpoint({})  # a checkpoint of an older nag: the seed is kept
    assert tiny._draw_seed == 11


def test_gather_codes_returns_the_codes_themselves_in_one_process(tmp_path: Path) -> None:
    z = torch.randn(4, 3)
    assert gather_codes(z) is z  # no process group
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert gather_codes(z) is z  # a group of one
    finally:
        dist.destroy_process_group()


# --- a real fit: the seed, the logged training terms ------------------------------------------------------------


class StepLosses(L.Callback):
    """Every training batch's size and loss, by epoch, as the Trainer hands them to callbacks."""

    def __init__(self) -> None:
        self.seen: dict[int, list[tuple[int, float]]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.seen.setdefault(trainer.current_epoch, []).append((batch[0].shape[0], float(outputs["loss"])))


@pytest.mark.parametrize("every", [1, 3])
def test_training_terms_are_logged_as_epoch_means_and_every_n_steps(compose_cfg, tmp_path: Path, every: int) -> None:
    # 48 images in batches of 16: 3 steps an epoch; 3 epochs, so the sums must restart every epoch.
    cfg = compose_cfg(
        [
            *TINY_FIT,
            "data.n_train=48",
            "data.batch_size=16",
            "trainer.max_epochs=3",
            f"trainer.log_every_n_steps={every}",
            "+trainer.limit_val_batches=0",
        ],
        output_dir=tmp_path,
    )
    L.seed_everything(0, verbose=False)
    model = build_model(cfg)
    model._draw_seed = 77  # kept by on_fit_start, not redrawn
    steps = StepLosses()
    trainer, _, _ = fit_tiny(cfg, model, extra_callbacks=[steps], seed=None)
    assert model._draw_seed == 77
    assert sorted(steps.seen) == [0, 1, 2] and all(len(v) == 3 for v in steps.seen.values())
    last = steps.seen[2]
    mean = sum(n * loss for n, loss in last) / sum(n for n, _ in last)
    metrics = trainer.callback_metrics
    assert metrics["train/loss_epoch"].item() == pytest.approx(mean, rel=1e-5)
    assert metrics["train/loss"].item() == pytest.approx(mean, rel=1e-5)
    # recon and matching: their own means, which add up to the loss with the weight
    w = model.matching.weight
    assert metrics["train/recon_epoch"] + w * metrics["train/matching_epoch"] == pytest.approx(mean, rel=1e-5)
    assert metrics["train/recon"].item() == pytest.approx(metrics["train/recon_epoch"].item())
    # the step tags: written after steps every, 2·every, ... (global_step + 1 divisible by it); the last one holds
    # that step's loss
    logged = max(step for step in range(9) if (step + 1) % every == 0)
    assert metrics["train/loss_step"].item() == pytest.approx(steps.seen[logged // 3][logged % 3][1], rel=1e-6)
    # what goes to the loggers and to the progress bar: these tags and no others
    assert set(trainer.logged_metrics) == {
        f"train/{t}_{w}" for t in ("recon", "matching", "loss") for w in ("step", "epoch")
    }
    assert set(trainer.progress_bar_metrics) == {"train/loss_step", "train/loss_epoch"}


def test_training_draws_follow_the_step_and_validation_draws_the_batch_index(compose_cfg, tmp_path: Path) -> None:
    """Each training step draws its prior samples from (draw seed, global step): new ones every step and epoch;
    validation from its batch index: the same every epoch."""
    cfg = compose_cfg(
        [*TINY_FIT, "data.n_train=32", "data.n_val=32", "data.batch_size=16", "trainer.max_epochs=2"],
        output_dir=tmp_path,
    )
    model = build_model(cfg)
    model._draw_seed = 5
    seen: list[tuple[bool, int]] = []
    loss_terms = model.loss_terms

    def recording(x, generator):  # noqa: ANN001, ANN202
        seen.append((model.training, generator.initial_seed()))
        return loss_terms(x, generator)

    model.loss_terms = recording
    fit_tiny(cfg, model, seed=0)
    train = [s for training, s in seen if training]
    assert train == [(5 * 1_000_003 + step) for step in range(4)], "2 epochs of 2 steps: one seed per step"
    val = [s for training, s in seen if not training]
    assert val == [0, 1] * (len(val) // 2) and len(val) >= 4, "every validation pass: its batch indices"


def test_a_fit_picks_a_draw_seed_and_validation_uses_the_batch_seeds(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        [*TINY_FIT, "data.n_train=32", "data.n_val=40", "data.batch_size=16", "+trainer.max_steps=1"],
        output_dir=tmp_path,
    )
    trainer, data, model = fit_tiny(cfg, seed=None)
    assert isinstance(model._draw_seed, int) and 0 <= model._draw_seed < 2**31 - 1
    seeds = set()
    for _ in range(20):  # a new run draws a new seed over the whole range
        model._draw_seed = None
        model.on_fit_start()
        seeds.add(model._draw_seed)
    assert len(seeds) == 20 and max(seeds) > 2**24
    (metrics,) = trainer.validate(model, datamodule=data, verbose=False)
    # by hand: each validation batch with the generator seeded by its index, averaged over the images
    model.eval()
    total, n = {"recon": 0.0, "matching": 0.0, "loss": 0.0}, 0
    with torch.no_grad():
        for i, (x, _) in enumerate(data.val_dataloader()):
            terms = model.loss_terms(x, torch.Generator().manual_seed(i))
            for k in total:
                total[k] += terms[k].item() * x.shape[0]
            n += x.shape[0]
    assert n == 40
    for k, v in total.items():
        assert metrics[f"val/{k}"] == pytest.approx(v / n, rel=1e-5), k
    assert set(metrics) == {"val/recon", "val/matching", "val/loss"}
    assert set(trainer.progress_bar_metrics) == {"val/loss"}

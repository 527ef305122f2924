"""The code that connects the tested parts: the training objective, what the figure callbacks feed the decoder,
the split logic, the scheduler branch. Each test is written so that a plausible one-line bug fails it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import open_dict
from torchvision.utils import make_grid

from nag.config.compose import compose_run
from nag.config.errors import instantiate
from nag.data.celeba_layout import index_celeba
from nag.training.build import build_model
from nag.training.callbacks.grids import InterpolationGrid, PriorProbes, PriorSamples, ReconstructionGrid
from nag.training.figures import PAD_VALUE
from tests.helpers import TINY_FIT, fit_tiny
from tests.helpers.celeba import write_torchvision


def _fit(compose_cfg, tmp_path: Path, extra: list[str], name: str = "run") -> tuple[L.Trainer, torch.nn.Module]:
    """A real fit of the tiny model; returns the trainer (its data module attached) and the model in eval mode."""
    cfg = compose_cfg([*TINY_FIT, *extra], output_dir=tmp_path / name)
    trainer, _, model = fit_tiny(cfg)
    return trainer, model.eval()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, cache_dir):  # noqa: ANN001, ANN201
    """One tiny model trained a few steps, its trainer and data module: the callbacks' real inputs."""
    overrides = [
        f"paths.cache_dir={cache_dir}",
        *TINY_FIT,
        "+trainer.max_steps=64",
        "prior=normal_mean-3",
        "data.n_train=512",
    ]
    cfg = compose_run(overrides, tmp_path_factory.mktemp("fitted"))
    trainer, _, model = fit_tiny(cfg)
    return trainer, model.eval()


def cells(grid: torch.Tensor, size: int, nrow: int) -> torch.Tensor:
    """The images of a ``make_grid`` (padding 2) of ``size``-px images, ``nrow`` per row: ``(N, 3, size, size)``."""
    rows = (grid.shape[1] - 2) // (size + 2)
    out = [
        grid[:, 2 + r * (size + 2) : 2 + r * (size + 2) + size, 2 + c * (size + 2) : 2 + c * (size + 2) + size]
        for r in range(rows)
        for c in range(nrow)
    ]
    return torch.stack(out)


class DecoderInputs:
    """Records every batch of codes the decoder receives (a forward pre-hook: the real module runs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.codes: list[torch.Tensor] = []
        self.handle = model.decoder.register_forward_pre_hook(lambda _, args: self.codes.append(args[0].clone()))

    def __enter__(self) -> DecoderInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


# --- the training objective ----------------------------------------------------------------------------------


def test_loss_is_recon_plus_lambda_times_matching(compose_cfg) -> None:
    cfg = compose_cfg(["debug=tiny", "matching=mmd_imq", "matching.weight=0.37", "prior=normal_mean-3"])
    model = build_model(cfg).train()
    x = torch.rand(16, 3, 16, 16)
    terms = model.loss_terms(x, torch.Generator().manual_seed(5))
    # each term recomputed from the public parts: the reconstruction MSE and the distance on the same draws
    z = model.encode(x)
    assert terms["recon"].item() == pytest.approx(F.mse_loss(model.decode(z), x).item(), rel=1e-6)
    matching = model.matching(z, model.prior, generator=torch.Generator().manual_seed(5))
    assert terms["matching"].item() == pytest.approx(matching.item(), rel=1e-6)
    assert abs(terms["matching"].item()) > 1e-3  # codes near 0 vs a prior at −3: the term is not negligible
    assert terms["loss"].item() == pytest.approx(terms["recon"].item() + 0.37 * terms["matching"].item(), rel=1e-6)
    # the matching term alone trains the encoder (its codes are not detached) and not the decoder
    terms["matching"].backward()
    assert sum(p.grad.abs().sum() for p in model.encoder.parameters() if p.grad is not None) > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.decoder.parameters())


def test_the_rare_pixel_weighting_is_written_out_and_assembled_into_the_loss(compose_cfg) -> None:
    from nag.model.reconstruction import weighted_mse

    # Known answer: two 1x1 "images", one black one white; the mean face is grey, both pixels equally far from
    # it (d = 3 · 0.25 each), so the weights are equal and the weighted error is the plain MSE...
    x = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1).contiguous()
    x_hat = torch.full_like(x, 0.5)
    assert weighted_mse(x_hat, x, 4.0).item() == pytest.approx(0.25)
    # ... and with one pixel at the mean (d = 0) and one far from it, the far one weighs 1 + α·2 against 1.
    x = torch.zeros(2, 3, 2, 1)
    x[:, :, 1] = torch.tensor([0.0, 1.0]).view(2, 1, 1)  # pixel 0: 0 in both images; pixel 1: 0 and 1
    err = torch.zeros_like(x)
    err[:, :, 0], err[:, :, 1] = 0.1, 0.3  # errors 0.1 at the common pixel, 0.3 at the rare one
    w_rare = 1 + 3.0 * 0.75 / 0.375  # d = 3 · 0.25 at pixel 1, mean(d) over the 4 positions = 0.375
    expected = (2 * 0.01 + 2 * w_rare * 0.09) / (2 + 2 * w_rare)
    assert weighted_mse(x + err, x, 3.0).item() == pytest.approx(expected, rel=1e-6)
    assert weighted_mse(x + err, x, 0.0).item() == pytest.approx(F.mse_loss(x + err, x).item(), rel=1e-6)
    # In the module: model.recon_emphasis > 0 makes the recon term this weighted error of the reconstruction.
    cfg = compose_cfg(["debug=tiny", "model.recon_emphasis=2.5"])
    model = build_model(cfg).train()
    assert model.hparams.recon_emphasis == 2.5
    x = torch.rand(16, 3, 16, 16)
    terms = model.loss_terms(x)
    recon = weighted_mse(model.decode(model.encode(x)), x, 2.5).item()
    assert terms["recon"].item() == pytest.approx(recon, rel=1e-6)
    assert recon != pytest.approx(F.mse_loss(model.decode(model.encode(x)), x).item(), rel=1e-3)


def test_the_ssim_and_frequency_terms_add_to_the_reconstruction_with_their_weights(compose_cfg) -> None:
    """Each term is 0 for a perfect reconstruction and the library's value otherwise (torchmetrics' SSIM, the
    authors' focal frequency loss); in the module, model.recon_ssim and model.recon_frequency add exactly their
    weight times it to the MSE."""
    from focal_frequency_loss import FocalFrequencyLoss
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    from nag.model.reconstruction import frequency_term, ssim_term

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert ssim_term(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert frequency_term(x, x).item() == pytest.approx(0.0, abs=1e-12)
    assert ssim_term(y, x).item() == pytest.approx(1 - ssim(y, x, data_range=1.0).item(), rel=1e-6)
    assert frequency_term(y, x).item() == pytest.approx(FocalFrequencyLoss()(y, x).item(), rel=1e-6)
    assert ssim_term(y, x).item() > 0.1 and frequency_term(y, x).item() > 0
    cfg = compose_cfg(["debug=tiny", "model.recon_ssim=0.5", "model.recon_frequency=2.0"])
    model = build_model(cfg).train()
    terms = model.loss_terms(x)
    x_hat = model.decode(model.encode(x))
    expected = F.mse_loss(x_hat, x) + 0.5 * ssim_term(x_hat, x) + 2.0 * frequency_term(x_hat, x)
    assert terms["recon"].item() == pytest.approx(expected.item(), rel=1e-6)
    terms["loss"].backward()  # the terms carry gradients to the nets
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


@pytest.mark.slow
def test_a_matched_run_moves_the_codes_to_its_prior_and_a_plain_run_does_not(compose_cfg, tmp_path: Path) -> None:
    """The point of the project, on the tiny model: matched to N(−3, 2), the codes end near −3."""
    codes = {}
    for matching in ("mmd_imq", "none"):
        extra = ["prior=normal_mean-3", f"matching={matching}", "data.n_train=512", "trainer.max_epochs=4"]
        trainer, model = _fit(compose_cfg, tmp_path, extra, matching)
        x, _ = trainer.datamodule.fixed_batch("val", 64)
        with torch.no_grad():
            codes[matching] = model.encode(x)
    assert abs(codes["mmd_imq"].mean().item() + 3) < 0.75, codes["mmd_imq"].mean()
    assert abs(codes["none"].mean().item() + 3) > 2, codes["none"].mean()


# --- what the figure callbacks decode -------------------------------------------------------------------------


def test_interpolation_grid_runs_from_image_a_to_a_different_image_b(fitted) -> None:
    trainer, model = fitted
    grid = InterpolationGrid(n_pairs=2, steps=7).figures(trainer, model)["images/interpolation"]
    images = cells(grid, 16, 7).view(2, 7, 3, 16, 16)  # (pair, step, ...)
    val = trainer.datamodule.fixed_batch("val", 4)[0]
    a, b = val[:2], val[2:4]
    assert not torch.allclose(a, b)
    with torch.no_grad():
        rec_a, rec_b = model.reconstruct(a), model.reconstruct(b)
    assert torch.allclose(images[:, 0], rec_a, atol=1e-5)  # column 0: A
    assert torch.allclose(images[:, -1], rec_b, atol=1e-5)  # last column: B
    # the barely trained model decodes near-grey faces, but A's and B's still differ (exactly equal if B were A)
    assert (images[:, 0] - images[:, -1]).abs().max() > 1e-2
    middle = images[:, 3]
    assert (middle - images[:, 0]).abs().max() > 1e-3 and (middle - images[:, -1]).abs().max() > 1e-3


def test_reconstruction_grid_shows_originals_above_their_reconstructions(fitted) -> None:
    trainer, model = fitted
    grid = ReconstructionGrid(n=4).figures(trainer, model)["images/reconstructions"]
    images = cells(grid, 16, 4)
    x = trainer.datamodule.fixed_batch("val", 4)[0]
    assert torch.allclose(images[:4], x, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(images[4:], model.reconstruct(x), atol=1e-5)


def test_probes_decode_codes_near_plus_and_minus_100(fitted) -> None:
    trainer, model = fitted
    with DecoderInputs(model) as seen:
        grids = PriorProbes(means=[100.0, -100.0], n=8, nrow=8).figures(trainer, model)
    assert list(grids) == ["images/probe_mean+100", "images/probe_mean-100"]
    plus, minus = seen.codes
    prior_sd = model.prior.variance.sqrt().max().item()
    assert abs(plus.mean().item() - 100) < prior_sd and abs(minus.mean().item() + 100) < prior_sd
    assert (plus.mean(0) - 100).abs().max() < 4 * prior_sd  # every dimension moved, not only the average
    with torch.no_grad():
        expected = make_grid(model.decode(plus), nrow=8, pad_value=PAD_VALUE)
    assert torch.allclose(grids["images/probe_mean+100"], expected)


def test_sample_grids_decode_the_same_prior_draws_every_epoch(fitted) -> None:
    trainer, model = fitted
    samples = PriorSamples(n=16, nrow=8, seed=0)
    with DecoderInputs(model) as seen:
        samples.figures(trainer, model)
        with torch.no_grad():  # the model changes between epochs; the draws must not
            for p in model.decoder.parameters():
                p.add_(0.01)
        samples.figures(trainer, model)
    first, second = seen.codes
    assert torch.equal(first, second)
    assert abs(first.mean().item() - model.prior.mean.mean().item()) < 1  # draws of the model's own prior


# --- augmentation and splits through the configs users run ------------------------------------------------------


@pytest.mark.parametrize("data", ["synthetic", "celeba"])
def test_flips_apply_to_the_training_split_only(compose_cfg, data: str, tmp_path: Path) -> None:
    cfg = compose_cfg(
        [f"data={data}", "data.flip=true", f"data.root={tmp_path}"]
        if data == "celeba"
        else ["debug=tiny", "data.flip=true"]
    )
    if data == "celeba":
        write_torchvision(tmp_path)
        with open_dict(cfg):
            cfg.data.image_size, cfg.data.crop, cfg.data.batch_size = 16, 100, 2
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert {s: dm.datasets[s].flip for s in ("train", "val", "test")} == {"train": True, "val": False, "test": False}
    # and the training loader really flips some images (same indices, compared with the unflipped cache)
    ds = dm.datasets["train"]
    torch.manual_seed(0)
    x, _ = ds.__getitems__(list(range(len(ds))))
    ds.flip = False
    plain, _ = ds.__getitems__(list(range(len(ds))))
    flipped = [not torch.equal(a, b) for a, b in zip(x, plain, strict=True)]
    assert any(flipped) and not all(flipped)
    assert all(torch.equal(a, b.flip(-1)) for a, b, f in zip(x, plain, flipped, strict=True) if f)


def test_official_celeba_ranges_at_their_boundaries(tmp_path: Path) -> None:
    """No partition file: the split follows the official index ranges, boundaries included; names past the last
    official image count as test."""
    expected = {
        "000001.jpg": "train",
        "162770.jpg": "train",
        "162771.jpg": "val",
        "182637.jpg": "val",
        "182638.jpg": "test",
        "202599.jpg": "test",
        "202600.jpg": "test",
        "250000.jpg": "test",
    }
    write_torchvision(tmp_path, partition=False, attributes=False, names=dict.fromkeys(expected, 0))
    files = index_celeba(tmp_path).files
    assert {n: s for s, names in files.items() for n in names} == expected


# --- optimizer and scheduler ---------------------------------------------------------------------------------


def test_the_scheduler_branch_decays_the_rate_at_its_milestones(compose_cfg) -> None:
    cfg = compose_cfg(
        [
            "debug=tiny",
            "+model.scheduler._target_=nag.model.schedules.StepDecay",
            "+model.scheduler._partial_=true",
            "+model.scheduler.milestones=[2,3]",
            "+model.scheduler.factors=[0.5,0.2]",
        ]
    )
    model = build_model(cfg)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    assert scheduler.optimizer is optimizer
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lr = cfg.model.optimizer.lr
    assert rates == pytest.approx([lr, lr, lr * 0.5, lr * 0.1, lr * 0.1])


def test_without_a_scheduler_configure_optimizers_returns_the_optimizer(compose_cfg) -> None:
    cfg = compose_cfg(["debug=tiny", "model.optimizer.lr=0.0042"])
    optimizer = build_model(cfg).configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.0042


def test_cells_helper_reads_back_a_grid() -> None:
    """The grid reader the tests above rely on."""
    images = torch.rand(6, 3, 16, 16)
    assert torch.equal(cells(make_grid(images, nrow=3, pad_value=PAD_VALUE), 16, 3), images)
    assert np.isclose(PAD_VALUE, make_grid(images, nrow=3, pad_value=PAD_VALUE)[0, 0, 0].item())


def test_interpolate_from_two_steps_on_and_not_fewer(fitted) -> None:
    _, model = fitted
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        path = model.interpolate(x[:2], x[1:], steps=2)  # (2, 2, 3, H, W): just the two ends
        assert torch.allclose(path[:, 0], model.reconstruct(x[:2]), atol=1e-5)
        assert torch.allclose(path[:, 1], model.reconstruct(x[1:]), atol=1e-5)
        with pytest.raises(ValueError, match="steps >= 2"):
            model.interpolate(x[:2], x[1:], steps=1)


def test_reconstruction_grid_is_padded_with_the_figure_background(fitted) -> None:
    trainer, model = fitted
    grid = ReconstructionGrid(n=3).figures(trainer, model)["images/reconstructions"]
    assert torch.all(grid[:, :2, :] == PAD_VALUE) and torch.all(grid[:, :, :2] == PAD_VALUE)


def test_moments_penalty_is_the_weighted_sum_of_squared_moment_errors() -> None:
    """A batch with known per-dimension moments against N(1, 2) (kurtosis 3), each weight distinct."""
    from nag.model.matching import Moments
    from nag.model.priors import NormalPrior

    z = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [-1.0, 4.0], [1.0, 4.0]])  # means 0, 2; variances 1, 4; kurtosis 1, 1
    moments = Moments(mean_weight=0.5, variance_weight=0.25, kurtosis_weight=0.125, weight=0.01)
    assert moments.weight == 0.01
    expected = 0.5 * ((0 - 1) ** 2 + (2 - 1) ** 2) / 2 + 0.25 * ((1 - 2) ** 2 + (4 - 2) ** 2) / 2 + 0.125 * 4
    value = moments(z, NormalPrior(2, mean=1.0, variance=2.0)).item()
    assert value == pytest.approx(expected, rel=1e-5)

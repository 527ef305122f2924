"""Encoder/decoder shapes, output ranges and the deviations from the report that matter."""

from __future__ import annotations

import pytest
import torch

from nag.model.nets import Decoder, Encoder
from nag.training.build import build_model


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("kernel_size", [4, 5])
def test_shapes_for_each_image_size(image_size, kernel_size) -> None:
    enc = Encoder(image_size=image_size, latent_dim=16, kernel_size=kernel_size, hidden_dim=32)
    dec = Decoder(image_size=image_size, latent_dim=16, kernel_size=kernel_size, hidden_dim=32)
    x = torch.rand(2, 3, image_size, image_size)
    z = enc(x)
    assert z.shape == (2, 16)
    assert dec(z).shape == x.shape


def test_architecture_is_the_reports() -> None:
    enc = Encoder(image_size=64, channels=(32, 64, 128))
    kinds = [type(m).__name__ for m in enc.conv]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 3
    fcs = [type(m).__name__ for m in enc.fc]
    assert fcs == ["Flatten", "Linear", "ReLU", "Linear"]  # last layer linear (deviation 1)
    dec = Decoder(image_size=64, channels=(32, 64, 128))
    kinds = [type(m).__name__ for m in dec.deconv]
    assert kinds == ["ConvTranspose2d", "BatchNorm2d", "ReLU"] * 2 + [
        "ConvTranspose2d",
        "Sigmoid",
    ]  # deviation 2


def test_codes_can_be_negative_and_images_are_in_range() -> None:
    torch.manual_seed(0)
    enc, dec = Encoder(image_size=32, latent_dim=8), Decoder(image_size=32, latent_dim=8)
    z = enc(torch.rand(16, 3, 32, 32))
    assert (z < 0).any(), "a ReLU on the last layer would make N(-3, 2) unreachable"
    x = dec(torch.randn(16, 8) * 100)  # even far-away codes decode into the data range
    assert x.min() >= 0 and x.max() <= 1


def test_bad_sizes_are_explained() -> None:
    with pytest.raises(ValueError, match="image_size=30 must be a multiple of 8"):
        Encoder(image_size=30)
    with pytest.raises(ValueError, match="data.image_size and the model's image_size agree"):
        Encoder(image_size=32)(torch.rand(1, 3, 64, 64))


def _layers(module: torch.nn.Module) -> list[tuple]:
    """(type, in, out, kernel, stride) of every conv/linear, ('BN', channels) and ('ReLU',) in order."""
    out: list[tuple] = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            out.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]))
        elif isinstance(m, torch.nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
        elif isinstance(m, torch.nn.BatchNorm2d):
            out.append(("BN", m.num_features))
        elif isinstance(m, torch.nn.ReLU | torch.nn.Sigmoid):
            out.append((type(m).__name__,))
    return out


def test_wae_celeba_preset_is_the_papers_layer_list(compose_cfg) -> None:
    """WAE (Tolstikhin et al. 2018) / RAE (Ghosh et al. 2020) CelebA 64 px, as composed by model=wae_celeba."""

    cfg = compose_cfg(["model=wae_celeba", "data=synthetic"])
    model = build_model(cfg)
    assert _layers(model.encoder) == [
        ("Conv2d", 3, 128, 5, 2),
        ("BN", 128),
        ("ReLU",),
        ("Conv2d", 128, 256, 5, 2),
        ("BN", 256),
        ("ReLU",),
        ("Conv2d", 256, 512, 5, 2),
        ("BN", 512),
        ("ReLU",),
        ("Conv2d", 512, 1024, 5, 2),
        ("BN", 1024),
        ("ReLU",),
        ("Linear", 4 * 4 * 1024, 64),
    ]
    assert _layers(model.decoder) == [
        ("Linear", 64, 8 * 8 * 1024),
        ("BN", 1024),
        ("ReLU",),
        ("ConvTranspose2d", 1024, 512, 5, 2),
        ("BN", 512),
        ("ReLU",),
        ("ConvTranspose2d", 512, 256, 5, 2),
        ("BN", 256),
        ("ReLU",),
        ("ConvTranspose2d", 256, 128, 5, 2),
        ("BN", 128),
        ("ReLU",),
        ("ConvTranspose2d", 128, 3, 5, 1),
        ("Sigmoid",),
    ]
    z = model.encode(torch.rand(2, 3, 64, 64))
    assert z.shape == (2, 64) and model.decode(z).shape == (2, 3, 64, 64)


def test_report_ae_is_unchanged_by_the_second_family(compose_cfg) -> None:

    cfg = compose_cfg(["data=synthetic"])
    model = build_model(cfg)
    assert _layers(model.decoder) == [
        ("Linear", 64, 512),
        ("ReLU",),
        ("Linear", 512, 128 * 8 * 8),
        ("ReLU",),
        ("ConvTranspose2d", 128, 64, 4, 2),
        ("BN", 64),
        ("ReLU",),
        ("ConvTranspose2d", 64, 32, 4, 2),
        ("BN", 32),
        ("ReLU",),
        ("ConvTranspose2d", 32, 3, 4, 2),
        ("Sigmoid",),
    ]


def test_wae_recipe_schedule_and_lambda(compose_cfg) -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg(["experiment=wae_celeba"])
    assert cfg.matching.weight == pytest.approx(100 / (0.05 * 64 * 64 * 3 * 4), rel=1e-3)
    assert (cfg.data.crop, cfg.data.image_size, cfg.data.batch_size, cfg.trainer.max_epochs) == (140, 64, 100, 55)
    assert cfg.prior.variance == 2.0 and cfg.model.latent_dim == 64 and list(cfg.model.optimizer.betas) == [0.5, 0.999]
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = instantiate(cfg.model.scheduler)(optimizer=optimizer)
    rates = []
    for _epoch in range(55):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == rates[29] == pytest.approx(1e-3)
    assert rates[30] == rates[49] == pytest.approx(5e-4)
    assert rates[50] == rates[54] == pytest.approx(1e-4)


def test_wae_preset_trains_a_step_through_the_entry_point(tmp_path, cache_dir) -> None:
    from tests.helpers import run_module

    r = run_module(
        "nag.train",
        ["experiment=wae_celeba", "debug=fdr", "data=synthetic_tiny", "data.image_size=64", "data.batch_size=8"],
        tmp_path,
        cache_dir,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "max_steps=1` reached" in r.stdout + r.stderr

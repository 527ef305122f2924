"""Encoder/decoder shapes, output ranges and the deviations from the report that matter."""

from __future__ import annotations

import pytest
import torch

from nag.nets import Decoder, Encoder


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

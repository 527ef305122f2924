"""Convolutional encoder and decoder: plain ``nn.Module``s, no Lightning. Two families, one code:

- the report's autoencoder (``model=report_ae``): ``len(channels)`` × (Conv2d stride 2 → BatchNorm → ReLU),
  then FC → ReLU → FC to the latent; the decoder mirrors it, FC → ReLU → FC → ReLU → transposed convs with
  stride 2 (BN + ReLU on all but the last);
- the WAE/RAE CelebA autoencoder (``model=wae_celeba``, Tolstikhin et al. 2018, Ghosh et al. 2020): the same
  conv stack (5×5, 128/256/512/1024 channels) and *one* linear layer to the latent (``hidden_dim: null``); the
  decoder maps the code by one linear layer to an 8×8×1024 map (BN → ReLU), upsamples three times and ends in
  a stride-1 transposed conv to the image (``last_stride: 1``).

Two deliberate deviations from the report's "ReLU after every layer":
- the encoder's last FC is linear, otherwise codes could never be negative and a prior such as N(−3, 2)
  could not be matched;
- the decoder ends in a sigmoid, so reconstructions live in the data range [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from annotated_types import Ge, Len
from torch import Tensor, nn

from nag.config.params import Count, checked


def _conv_geometry(kernel_size: int) -> tuple[int, int]:
    """Padding and output padding that make a stride-2 (transposed) conv exactly halve (double) the size."""
    if kernel_size % 2 == 0:
        return (kernel_size - 2) // 2, 0
    return (kernel_size - 1) // 2, 1


def _feature_size(image_size: int, n_layers: int) -> int:
    factor = 2**n_layers
    if image_size < factor or image_size % factor:
        raise ValueError(
            f"image_size={image_size} must be a multiple of {factor} (2^len(channels)); use e.g. 32, 64 or 128."
        )
    return image_size // factor


class Encoder(nn.Module):
    """Image ``(B, C, H, H)`` in [0, 1] → code ``(B, latent_dim)``.

    Args:
        image_size: Height = width of the input.
        latent_dim: Size of the code.
        channels: Output channels of the conv layers (their count sets the depth).
        kernel_size: Conv kernel size (stride 2 throughout).
        hidden_dim: Width of the hidden FC layer; None maps the features to the code with one linear layer.
        in_channels: Image channels.
        relu_codes: End in a ReLU, as the report's "ReLU after every layer" says literally (codes ≥ 0; off by
            default: a prior with a negative mean could never be matched).
    """

    @checked
    def __init__(
        self,
        image_size: Annotated[int, Ge(8)] = 64,
        latent_dim: Count = 64,
        channels: Annotated[Sequence[int], Len(1), Ge(1)] = (32, 64, 128),
        kernel_size: Annotated[int, Ge(2)] = 4,
        hidden_dim: Count | None = 512,
        in_channels: Count = 3,
        relu_codes: bool = False,
    ) -> None:
        super().__init__()
        self.image_size, self.latent_dim, self.in_channels = image_size, latent_dim, in_channels
        pad, _ = _conv_geometry(kernel_size)
        side = _feature_size(image_size, len(channels))
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size, stride=2, padding=pad),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        features = c_in * side * side
        head: list[nn.Module] = [nn.Linear(features, hidden_dim), nn.ReLU()] if hidden_dim else []
        # The last layer is linear: codes must reach negative prior means.
        last: list[nn.Module] = [nn.ReLU()] if relu_codes else []
        self.fc = nn.Sequential(nn.Flatten(), *head, nn.Linear(hidden_dim or features, latent_dim), *last)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"encoder expects images (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}: do data.image_size and the model's image_size agree?"
            )
        return self.fc(self.conv(x))  # (B, d)


class Decoder(nn.Module):
    """Code ``(B, latent_dim)`` → image ``(B, C, H, H)`` in [0, 1]; the mirror of :class:`Encoder`.

    Args:
        image_size: Height = width of the output.
        latent_dim: Size of the code.
        channels: The *encoder's* conv channels; the decoder walks them in reverse.
        kernel_size: Transposed-conv kernel size.
        hidden_dim: Width of the hidden FC layer; None maps the code to the first feature map with one linear
            layer followed by batch norm and ReLU.
        last_stride: 2: every transposed conv doubles the size, the last one making the image (the report);
            1: the size doubles ``len(channels) - 1`` times and a stride-1 transposed conv makes the image (WAE).
        out_channels: Image channels.
    """

    @checked
    def __init__(
        self,
        image_size: Annotated[int, Ge(8)] = 64,
        latent_dim: Count = 64,
        channels: Annotated[Sequence[int], Len(1), Ge(1)] = (32, 64, 128),
        kernel_size: Annotated[int, Ge(2)] = 4,
        hidden_dim: Count | None = 512,
        last_stride: Literal[1, 2] = 2,
        out_channels: Count = 3,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        pad, out_pad = _conv_geometry(kernel_size)
        rev = list(channels)[::-1]  # e.g. 128, 64, 32
        n_up = len(rev) if last_stride == 2 else len(rev) - 1
        self.side = _feature_size(image_size, n_up)
        self.top_channels = rev[0]
        top = rev[0] * self.side * self.side
        if hidden_dim:
            self.fc = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, top), nn.ReLU())
        else:
            self.fc = nn.Sequential(
                nn.Linear(latent_dim, top),
                nn.Unflatten(1, (rev[0], self.side, self.side)),
                nn.BatchNorm2d(rev[0]),
                nn.ReLU(),
            )
        layers: list[nn.Module] = []
        outs = rev[1:] + [out_channels] if last_stride == 2 else rev[1:]
        for i, (c_in, c_out) in enumerate(zip(rev[:n_up], outs, strict=True)):
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size, 2, padding=pad, output_padding=out_pad))
            if not (last_stride == 2 and i == n_up - 1):  # all but the layer that makes the image
                layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
        if last_stride == 1:
            layers.append(nn.ConvTranspose2d(rev[-1], out_channels, kernel_size, 1, padding=pad))
        layers.append(nn.Sigmoid())  # data range [0, 1]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], self.top_channels, self.side, self.side)  # (B, C, s, s)
        return self.deconv(h)  # (B, 3, H, W)

"""Image grids of a trained module, shared by the TensorBoard callbacks, ``nag.evaluate`` and ``nag.report``.

Each function returns a ``(3, H, W)`` grid in [0, 1] (``torchvision.utils.make_grid``) and needs only the
module's public API (``reconstruct``, ``interpolate``, ``decode``). Which codes to decode is the prior's
business (:func:`nag.priors.fixed_draw`, :func:`nag.priors.translated`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import make_grid

PAD_VALUE = 1.0  # white separators between faces


def reconstruction_grid(module: torch.nn.Module, x: Tensor) -> Tensor:
    """Originals ``x (n, 3, H, W)`` in the top row, their reconstructions below."""
    return make_grid(torch.cat([x, module.reconstruct(x)]), nrow=x.shape[0], pad_value=PAD_VALUE)


def interpolation_grid(module: torch.nn.Module, a: Tensor, b: Tensor, steps: int = 11) -> Tensor:
    """Row r decodes (1 − t)·z(a_r) + t·z(b_r) for ``steps`` values of t from 0 to 1."""
    return image_grid(module.interpolate(a, b, steps).flatten(0, 1), nrow=steps)  # rows: (P, S, 3, H, W)


def image_grid(images: Tensor, nrow: int = 8) -> Tensor:
    return make_grid(images, nrow=nrow, pad_value=PAD_VALUE)


def probe_tag(mean: float) -> str:
    return f"probe_mean{mean:+g}"

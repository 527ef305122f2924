"""Image grids of a trained module, shared by the TensorBoard callbacks, ``nag.evaluate`` and ``nag.report``
(the attribute directions the edit grid moves codes along are :mod:`nag.model.latent_edit`'s).

Each function returns a ``(3, H, W)`` grid in [0, 1] (``torchvision.utils.make_grid``) and needs only the
module's public API (``reconstruct``, ``interpolate``, ``decode``). Which codes to decode is the prior's
business (:func:`nag.model.priors.fixed_draw`, :func:`nag.model.priors.translated`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.utils import make_grid

from nag.model.latent_edit import EDIT_STEPS, edited_codes

PAD_VALUE = 1.0  # white separators between faces


def reconstruction_grid(module: torch.nn.Module, x: Tensor) -> Tensor:
    """Originals ``x (n, 3, H, W)`` in the top row, their reconstructions below."""
    return make_grid(torch.cat([x, module.reconstruct(x)]), nrow=x.shape[0], pad_value=PAD_VALUE)


def interpolation_grid(module: torch.nn.Module, a: Tensor, b: Tensor, steps: int = 11) -> Tensor:
    """Row r decodes (1 − t)·z(a_r) + t·z(b_r) for ``steps`` values of t from 0 to 1."""
    return image_grid(module.interpolate(a, b, steps).flatten(0, 1), nrow=steps)  # rows: (P, S, 3, H, W)


def image_grid(images: Tensor, nrow: int = 8) -> Tensor:
    return make_grid(images, nrow=nrow, pad_value=PAD_VALUE)


def png_bytes(grid: Tensor, palette: bool = False) -> bytes:
    """An image grid ``(3, H, W)`` in [0, 1] as PNG bytes (for an atomic writer); ``palette``: 256 colours (a third
    of the size, what the README shows), else lossless."""
    import io

    from PIL import Image
    from torchvision.utils import save_image

    buffer = io.BytesIO()
    if not palette:
        save_image(grid, buffer, format="png")
        return buffer.getvalue()
    pixels = grid.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    image = Image.fromarray(pixels).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def probe_tag(mean: float) -> str:
    return f"probe_mean{mean:+g}"


# --- attribute edits ------------------------------------------------------------------------------------


@torch.no_grad()
def edit_grid(
    model: torch.nn.Module, x: Tensor, directions: dict[str, Tensor], steps: Sequence[float] = EDIT_STEPS
) -> Tensor:
    """Rows: for each face of ``x (F, 3, H, W)``, for each attribute, the face's code moved along the attribute's
    direction by each step (the middle column, step 0, is the plain reconstruction)."""
    z = model.encode(x)  # (F, d)
    rows = [edited_codes(z[f : f + 1], d, steps)[0] for f in range(len(x)) for d in directions.values()]
    images = model.decode(torch.cat(rows))  # (F·A·S, 3, H, W)
    return image_grid(images.float().cpu(), nrow=len(steps))

"""Arithmetic in code space: the direction of an attribute (mean code of the faces with it minus without it)
and codes moved along it. Plain torch: the edit grids, ``Run.edit``, the report and the benchmark use it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: Steps along a direction in the edit grid, in multiples of its length.
EDIT_STEPS = (-2.0, -1.0, 0.0, 1.0, 2.0)
#: The fewest faces with and without an attribute for its direction to be estimated.
MIN_PER_CLASS = 5


def attribute_directions(codes: Tensor, attributes: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    """``{name: mean(code | attribute) − mean(code | no attribute)}`` for attributes with at least
    :data:`MIN_PER_CLASS` faces on each side. ``codes (N, d)``, ``attributes (N, A)`` 0/1."""
    out = {}
    for k, name in enumerate(names):
        has = attributes[:, k] > 0.5  # (N,)
        if MIN_PER_CLASS <= int(has.sum()) <= len(has) - MIN_PER_CLASS:
            out[name] = codes[has].mean(0) - codes[~has].mean(0)  # (d,)
    return out


def chosen(directions: dict[str, Tensor], wanted: Sequence[str], fallback: int = 6) -> dict[str, Tensor]:
    """The directions of the ``wanted`` attributes the dataset has, else its first ``fallback`` ones."""
    return {n: directions[n] for n in wanted if n in directions} or dict(list(directions.items())[:fallback])


def edited_codes(z: Tensor, direction: Tensor, steps: Sequence[float] = EDIT_STEPS) -> Tensor:
    """``z (F, d)`` moved by each step times ``direction``: ``(F, S, d)``."""
    s = torch.tensor(steps, dtype=z.dtype, device=z.device).view(1, -1, 1)  # (1, S, 1)
    return z.unsqueeze(1) + s * direction.to(z).view(1, 1, -1)

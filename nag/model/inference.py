"""Running a net over many images or codes: in batches on a device, the result on the CPU (or left where it was
computed). The one batched-inference loop of nag: the callbacks, the evaluation and the attribute classifier
all use it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def resolve_device(name: str) -> str:
    """``auto`` is the GPU when torch sees one, else the CPU; any other name is returned as it is."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


@torch.no_grad()
def batched(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    device: torch.device | str,
    batch_size: int = 256,
    to_cpu: bool = True,
    on_batch: Callable[[int], object] | None = None,
) -> Tensor:
    """``fn`` over ``x`` in batches of ``batch_size`` on ``device``, concatenated as float32 (on the CPU unless
    ``to_cpu`` is false). ``x (N, ...)`` may live anywhere; each batch is moved to ``device``; ``on_batch`` gets
    each batch's size once it is done (a progress bar's ``update``)."""
    parts = []
    for i in range(0, len(x), batch_size):
        parts.append(fn(x[i : i + batch_size].to(device)).float())
        if on_batch is not None:
            on_batch(len(parts[-1]))
    out = torch.cat(parts) if parts else x.new_zeros(0)
    return out.cpu() if to_cpu else out

"""The one piece of distributed training nag writes itself: gathering the codes of every process (DDP)."""

from __future__ import annotations

import torch
from torch import Tensor


def gather_codes(z: Tensor) -> Tensor:
    """The codes of every process of a distributed run, ``(W·B, d)``, in rank order; ``z`` itself otherwise.

    Differentiable: ``torch.distributed.nn``'s all-gather sends back to each process the *sum* over processes of
    the gradients for its share. Every process computes the same distance of the global batch, so that sum is
    W times the distance's gradient, and DDP's averaging of the parameter gradients over the W processes gives
    exactly the gradient of a single process holding the whole batch.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=0)

"""Learning-rate schedules that torch does not offer as configurable classes.

Configs cannot hold a ``lambda``, so a piecewise schedule such as WAE's ("halve the rate after 30 epochs,
divide it by 5 after 50") needs a class with plain arguments. Adding a schedule is one class here (a subclass
of a torch scheduler, so checkpoints may store it: see :mod:`nag.runs.trusted`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class StepDecay(LambdaLR):
    """Multiply the initial rate by ``factors[i]`` from epoch ``milestones[i]`` on, cumulatively.

    ``StepDecay(opt, milestones=[30, 50], factors=[0.5, 0.2])``: the rate is lr for epochs 0–29, lr/2 for
    30–49, lr/10 from 50 on. (``MultiStepLR`` takes one factor for every milestone.)

    Args:
        optimizer: The optimizer.
        milestones: Epochs at which a factor starts to apply, increasing.
        factors: One positive factor per milestone.
        last_epoch: As in every torch scheduler.
    """

    def __init__(
        self, optimizer: Optimizer, milestones: Sequence[int], factors: Sequence[float], last_epoch: int = -1
    ) -> None:
        if len(milestones) != len(factors) or list(milestones) != sorted(milestones) or min(factors, default=1) <= 0:
            raise ValueError(
                f"model.scheduler needs increasing milestones and as many positive factors, got {list(milestones)} "
                f"and {list(factors)}."
            )
        self.milestones, self.factors = [int(m) for m in milestones], [float(f) for f in factors]
        super().__init__(optimizer, self.rate, last_epoch)

    def rate(self, epoch: int) -> float:
        return math.prod(f for m, f in zip(self.milestones, self.factors, strict=True) if epoch >= m)

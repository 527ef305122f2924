"""An ex-post normalising flow (``sampler=flow``): a density fitted to the training codes that a Gaussian mixture
cannot follow (curved, heavy-tailed, many-moded code clouds), sampled and decoded.

The flow is zuko's (Rozet et al.): a masked autoregressive flow (``kind=maf``, Papamakarios et al. 2017, the
sampler pythae offers as ``MAFSampler``) or a neural spline flow (``kind=nsf``, Durkan et al. 2019). Fitting follows
pythae's ``MAFSampler`` (``pythae/samplers/maf_sampler``): maximum likelihood on the training codes with Adam,
early stopping on held-out codes. Where we differ (``nag.samplers.fitted``): the codes are standardised first, the
held-out split is a seeded fraction of the codes (pythae takes an optional separate eval set), the best epoch's
weights are kept, not the last, and the fit is stored beside the run (``<run>/samplers/flow-<key>.pt``) and reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from annotated_types import Gt, Lt
from torch import Tensor

from nag.config.params import Count, Positive, checked
from nag.samplers.fitted import FittedSampler


class FlowSampler(FittedSampler):
    """A normalising flow fitted to the training codes (module docstring).

    Args:
        kind: ``maf`` (masked autoregressive, affine) or ``nsf`` (neural spline).
        transforms: Flow layers.
        hidden: Width of the two hidden layers of each layer's conditioner.
        max_epochs: Upper bound on training epochs.
        patience: Stop after this many epochs without a better held-out log-likelihood.
        lr: Adam's learning rate.
        batch_size: Codes per step.
        val_fraction: Share of the codes held out for early stopping.
        seed: Seed of the split, the initialisation, the batches and of sampling.
        store: Folder of fitted flows (``null``: the entry points use ``<run>/samplers`` of the checkpoint's run).
    """

    prefix, label = "flow", "flow"
    net_settings = ("kind", "transforms", "hidden")

    @checked
    def __init__(
        self,
        kind: Literal["maf", "nsf"] = "maf",
        transforms: Count = 4,
        hidden: Count = 128,  # noqa: UP037
        max_epochs: Count = 500,
        patience: Count = 20,
        lr: Positive = 1e-3,
        batch_size: Count = 256,
        val_fraction: Annotated[float, Gt(0), Lt(1)] = 0.2,
        seed: int = 0,
        store: str | None = None,
    ) -> None:
        self.kind, self.transforms, self.hidden = kind, transforms, hidden
        self.max_epochs, self.patience, self.lr, self.batch_size = max_epochs, patience, lr, batch_size
        self.val_fraction, self.seed, self.store = val_fraction, seed, store
        self.name = f"flow_{kind}"
        self.history: dict[str, Any] = {}

    # --- the flow -------------------------------------------------------------------------------------------------

    def _build(self, dim: int) -> torch.nn.Module:
        import zuko

        cls = zuko.flows.MAF if self.kind == "maf" else zuko.flows.NSF
        return cls(dim, transforms=self.transforms, hidden_features=(self.hidden, self.hidden))

    def _loss(self, net: torch.nn.Module, z: Tensor) -> Tensor:
        return -net().log_prob(z)

    def _draw(self, n: int) -> Tensor:
        return self.net().sample((n,))

    @property
    def flow(self) -> torch.nn.Module:
        return self.net

    def log_prob(self, codes: Tensor) -> Tensor:
        """Log-density of codes under the fitted flow (nats; the standardisation's Jacobian included)."""
        with torch.no_grad():
            z = (codes.float().cpu() - self.mean) / self.std
            return self.net().log_prob(z) - self.std.log().sum()


def store_beside(sampler: Any, ckpt_path: str | Path | None) -> Any:
    """Give a sampler that stores its fit (``store: null``) the ``samplers/`` folder of the checkpoint's run."""
    from nag.runs.run_dir import SAMPLERS, RunDir

    if getattr(sampler, "store", "") is None and ckpt_path:
        run = RunDir.of_checkpoint(ckpt_path)
        if run is not None:
            sampler.store = str(run / SAMPLERS)
    return sampler

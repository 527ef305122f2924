"""What a trained run *is*, read from its checkpoint, and its data rebuilt: the layer ``nag.report``,
``nag.compare`` and the notebook share on top of the run-dir model (:mod:`nag.runs.run_dir`).

What a run is (plain or matched, which prior) is read from its checkpoint, not from config strings: the
stored prior and matching distance are rebuilt (safely, through :mod:`nag.runs.trusted`) and inspected. Its
data module is rebuilt from its stored config's ``data`` section, read as data (:mod:`nag.runs.stored_config`)
with this machine's paths, and checked against the allow-list before it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from nag.config.errors import UserInputError
from nag.model.matching import NoMatching
from nag.model.priors import NormalPrior
from nag.runs.run_dir import RunDir
from nag.runs.stored_config import local_paths
from nag.runs.trusted import build_stored
from nag.training.module import NAGModule


def load_model(run: RunDir, device: str = "cpu", best: bool = True) -> NAGModule:
    """The trained model of ``run`` (its best checkpoint, or ``last.ckpt``), read safely, in eval mode."""
    ckpt = run.best_ckpt if best else run.last_ckpt
    if ckpt is None:
        raise UserInputError(f"run {run.path} has no checkpoint to load (checkpoints/*.ckpt as regular files).")
    return NAGModule.load_from_checkpoint(ckpt, map_location=device).eval()


def data_config(run: RunDir, paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``data`` section of the run's stored config, with this machine's paths (``paths`` overrides them)."""
    return run.config.section("data", local_paths(run.path, paths))


def load_data(run: RunDir, paths: Mapping[str, Any] | None = None) -> Any:
    """The data module the run trained on, rebuilt safely (allow-list first)."""
    return build_stored(data_config(run, paths), f"{run.path / '.hydra/config.yaml'} data")


# --- roles, from what the checkpoint stores ------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """What a trained model is: plain (no matching term) or matched, and to which prior."""

    plain: bool
    prior: str  # e.g. "NormalPrior(mean≈-3, variance≈2)"
    normal_mean: float | None  # the common mean when the prior is a Normal with one mean and variance 2
    variance: float | None


def role_of(model: NAGModule) -> Role:
    """Read from the rebuilt prior and matching distance (their classes and buffers), not from strings."""
    prior, plain = model.prior, isinstance(model.matching, NoMatching) or model.matching.weight == 0
    mean = variance = None
    uniform = isinstance(prior, NormalPrior) and bool(torch.all(prior.mean == prior.mean[0]))
    if uniform and torch.all(prior.variance == prior.variance[0]):
        mean, variance = float(prior.mean[0]), float(prior.variance[0])
    return Role(plain, repr(prior), mean, variance)

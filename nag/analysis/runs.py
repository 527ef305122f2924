"""Finding training runs on disk and reading what they are: the layer ``nag.report`` and ``nag.compare`` share.

A *run* is a directory that ``python -m nag.train`` wrote: ``.hydra/`` (its overrides and config), ``checkpoints/``,
``metrics.json`` when it finished, ``failure.json`` when it failed. :func:`discover` finds every run under a
directory: a run dir itself, a sweep dir (``multirun/<date>/<time>``), or any folder above them.

What a run *is* (plain or matched, which prior) is read from its checkpoint, not from config strings: the
stored prior and matching distance are rebuilt (safely, through :mod:`nag.trusted`) and inspected.
Everything here is read from disk and so untrusted: nothing is built outside the allow-list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nag.errors import UserInputError
from nag.matching import NoMatching
from nag.module import NAGModule
from nag.priors import NormalPrior
from nag.resume import override_values
from nag.sweep import one_line


@dataclass
class Run:
    """One training run's directory and what it left there."""

    path: Path
    overrides: list[str] = field(default_factory=list)

    @cached_property
    def cfg(self) -> DictConfig | None:
        """``.hydra/config.yaml`` (unresolved, untrusted: build from it only with ``nag.trusted.build_stored``)."""
        path = self.path / ".hydra" / "config.yaml"
        try:
            cfg = OmegaConf.load(path) if path.is_file() else None
        except Exception as e:  # YAML errors come in many types
            raise UserInputError(f"{path} is not a readable run config ({type(e).__name__}: {e}).") from None
        return cfg if isinstance(cfg, DictConfig) else None

    @cached_property
    def metrics(self) -> dict[str, Any] | None:
        return _read_json(self.path / "metrics.json")

    @cached_property
    def failure(self) -> dict[str, Any] | None:
        return _read_json(self.path / "failure.json")

    @property
    def status(self) -> str:
        """``ok`` (finished), ``failed`` (``failure.json``) or ``incomplete`` (killed, or still running)."""
        if self.failure is not None:
            return "failed"
        return "ok" if self.metrics is not None else "incomplete"

    @property
    def reason(self) -> str:
        """Why a failed run failed (the first line of its message)."""
        return one_line(str(self.failure.get("error", ""))) if self.failure else ""

    @property
    def last_ckpt(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    @property
    def best_ckpt(self) -> Path | None:
        """The best checkpoint (lowest ``val/loss``) if the run kept one, else ``last.ckpt`` if any."""
        best = sorted(self.path.glob("checkpoints/best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        if best:
            return best[-1]
        return self.last_ckpt if self.last_ckpt.is_file() else None

    def load(self, device: str = "cpu", best: bool = True) -> NAGModule:
        """The trained model, read safely (``NAGModule.load_from_checkpoint``), in eval mode."""
        ckpt = self.best_ckpt if best else self.last_ckpt
        if ckpt is None or not ckpt.is_file():
            raise UserInputError(f"run {self.path} has no checkpoint to load.")
        return NAGModule.load_from_checkpoint(ckpt, map_location=device).eval()

    def label(self, keys: list[str] | None = None) -> str:
        """The run's overrides (only ``keys`` when given), e.g. ``matching=none prior.mean=-3``."""
        values = override_values(self.overrides)
        shown = [f"{k}={values[k]}" for k in keys if k in values] if keys is not None else self.overrides
        return " ".join(shown) or self.path.name


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file() and path.name != "resume"


def discover(root: Path) -> list[Run]:
    """Every run under ``root`` (``root`` itself if it is one), in sweep job order, then by path."""
    if not root.is_dir():
        raise UserInputError(f"{root} is not a directory; give a run dir, a sweep dir or a folder above them.")
    dirs = [root] if is_run_dir(root) else sorted({p.parent.parent for p in root.rglob(".hydra/config.yaml")})
    runs = []
    for d in dirs:
        if not is_run_dir(d):
            continue
        try:
            overrides = [str(o) for o in OmegaConf.load(d / ".hydra" / "overrides.yaml") or []]
        except Exception:  # a run without (readable) overrides is still a run
            overrides = []
        runs.append(Run(d, overrides))
    return sorted(runs, key=lambda r: _order(r.path, root))


def _order(path: Path, root: Path) -> tuple:
    parts = path.relative_to(root).parts if path != root else ()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def swept_keys(runs: list[Run]) -> list[str]:
    """The override keys whose value differs between runs (or that only some runs set), in first-seen order."""
    values = [override_values(r.overrides) for r in runs]
    keys = list(dict.fromkeys(k for v in values for k in v))
    return [k for k in keys if len({v.get(k) for v in values}) > 1]


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

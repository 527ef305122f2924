"""nag: non-adversarial generative networks (autoencoders whose codes are matched to a prior).

The public API (docs/api.md): ``nag.train(overrides)`` trains as ``python -m nag.train`` does and returns the
:class:`Run`; ``nag.load_run(path)`` opens a run dir or a checkpoint; :class:`Sampler` is what an ex-post sampler
offers. Everything else is internal and may move; these names and signatures are pinned by a test.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nag.analysis.runs import Run, load_run
    from nag.samplers.core import Sampler

__all__ = ["Run", "Sampler", "load_run", "train"]

#: Where each public name lives (imported on first use: ``import nag`` stays light, no torch).
_PUBLIC = {"Run": "nag.analysis.runs", "load_run": "nag.analysis.runs", "Sampler": "nag.samplers.core"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name == "train":  # the entry point's module, callable as nag.train([...]) (nag/train.py)
        return importlib.import_module("nag.train")
    raise AttributeError(f"module 'nag' has no attribute {name!r}")


#: The Hydra config tree, shipped inside the package (``nag/conf`` links to the top-level ``conf/``).
CONF_DIR = Path(__file__).resolve().parent / "conf"


# The nag.* resolvers of the config tree (${nag.fresh_dir:...}, ...) register when nag is imported.
from nag.config import resolvers as _resolvers  # noqa: E402, F401

#: Modules that moved when the package got its layers (2026-11), importable by their old names for one more
#: release with a DeprecationWarning (docs/changelog.md).
MOVED = {
    "nag.module": "nag.training.module",
    "nag.figures": "nag.training.figures",
    "nag.checkpoint": "nag.training.checkpoint",
    "nag.priors": "nag.model.priors",
    "nag.matching": "nag.model.matching",
    "nag.nets": "nag.model.nets",
    "nag.schedules": "nag.model.schedules",
    "nag.latent_fit": "nag.model.latent_fit",
    "nag.findings": "nag.analysis.findings",
    "nag.errors": "nag.config.errors",
    "nag.compose": "nag.config.compose",
    "nag.analysis.samplers": "nag.samplers.core",
    "nag.analysis.flow": "nag.samplers.flow",
    "nag.analysis.metrics": "nag.metrics.quality",
    "nag.analysis.fidelity": "nag.metrics.fidelity",
    "nag.analysis.inception": "nag.metrics.inception",
    "nag.analysis.fid_callback": "nag.training.callbacks.fid",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import nag.module`` gives ``nag.training.module`` itself (the same module object), with a warning."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: Any) -> Any:
        # Attributed to the line that imports (past importlib's own frames), so a notebook or script shows it.
        level, frame = 1, sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            level, frame = level + 1, frame.f_back
        warnings.warn(
            f"{spec.name} moved to {MOVED[spec.name]}; the old name goes in the next release.",
            DeprecationWarning,
            stacklevel=level + 1,
        )
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: Any) -> None:
        """Nothing to run: the module is the one already imported under its new name."""


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())

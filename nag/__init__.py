"""nag: non-adversarial generative networks (autoencoders whose codes are matched to a prior).

The public API (docs/api.md): ``nag.train(overrides)`` trains as ``python -m nag.train`` does and returns the
:class:`Run`; ``nag.load_run(path)`` opens a run dir or a checkpoint; :class:`Sampler` is what an ex-post sampler
offers. Everything else is internal and may move; these names and signatures are pinned by a test.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.util
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

if TYPE_CHECKING:
    from nag.analysis.runs import Run, load_run
    from nag.analysis.samplers import Sampler

__all__ = ["Run", "Sampler", "load_run", "train"]

#: Where each public name lives (imported on first use: ``import nag`` stays light, no torch).
_PUBLIC = {"Run": "nag.analysis.runs", "load_run": "nag.analysis.runs", "Sampler": "nag.analysis.samplers"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name == "train":  # the entry point's module, callable as nag.train([...]) (nag/train.py)
        return importlib.import_module("nag.train")
    raise AttributeError(f"module 'nag' has no attribute {name!r}")


#: The Hydra config tree, shipped inside the package (``nag/conf`` links to the top-level ``conf/``).
CONF_DIR = Path(__file__).resolve().parent / "conf"


#: Longest TensorBoard run name kept as is (a file name may have 255 bytes; TensorBoard's UI wants far fewer).
RUN_NAME_LIMIT = 96


def run_name(overrides: str) -> str:
    """A TensorBoard run name from Hydra's ``job.override_dirname`` ('' → 'default').

    Path separators and characters TensorBoard cannot show in a directory name become '_'. A name longer than
    :data:`RUN_NAME_LIMIT` is shortened readably: each key to its last part (``prior.mean=-3`` → ``mean=-3``),
    long values cut, and a hash of the full overrides appended so names stay unique within a sweep. The full
    overrides are logged in the run's hparams.
    """
    name = re.sub(r"[/\\:*?\"<>| ]", "_", overrides) or "default"
    if len(name.encode()) <= RUN_NAME_LIMIT:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:8]
    parts = []
    for part in name.split(","):
        key, _, value = part.partition("=")
        short = key.rsplit(".", 1)[-1]
        parts.append(f"{short}={value[:16]}" if value else short[:24])
    short_name = ",".join(parts)
    budget = RUN_NAME_LIMIT - len(digest) - 1
    if len(short_name.encode()) > budget:
        short_name = short_name.encode()[:budget].decode(errors="ignore")
    return f"{short_name}~{digest}"


def fresh_dir(path: str) -> str:
    """``path``, or ``path_1``, ``path_2``, ...: the first that does not exist yet, created on the spot so that
    two runs started in the same second never share a run dir (the mkdir is the atomic claim). Registered
    with OmegaConf's per-config cache, so one run resolves it once."""
    base = Path(path)
    for i in range(10_000):
        candidate = base if i == 0 else base.with_name(f"{base.name}_{i}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return str(candidate)
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory next to {path}")


def outputs(config_name: str) -> str:
    """Where an entry point's single runs go (``hydra.run.dir``'s base): ``outputs`` for ``nag.train``,
    ``outputs/<config>`` for the others (``outputs/evaluate``, ``outputs/sample``)."""
    return "outputs" if config_name in ("train", "") else f"outputs/{config_name}"


def sweep_subdir(num: int | str, first: int | str, retried: str) -> str:
    """``hydra.sweep.subdir`` of a continued Optuna search (:func:`nag.runs.continuation.continue_study`), whose
    sweeper numbers its jobs from 0 again: its first jobs are the interrupted trials asked again and go back to
    their own dirs (``retried``: their dirs, each after a ``d``: ``d1d4``); every other job gets its trial's
    number, ``first + num`` (``first``: the trials so far), as in a search that was never stopped."""
    num, first = int(num), int(first)
    old = [s for s in str(retried).split("d") if s]
    return old[num] if num < len(old) else str(first + num)


def gpu_precision() -> str:
    """``bf16-mixed`` where the GPU computes in bfloat16 (Ampere and newer), else ``16-mixed`` (trainer=gpu).

    Imports torch only when a config asks (``${nag.gpu_precision:}``), i.e. when a trainer is built."""
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"


OmegaConf.register_new_resolver("nag.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("nag.gpu_precision", gpu_precision, replace=True)
OmegaConf.register_new_resolver("nag.fresh_dir", fresh_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("nag.sweep_subdir", sweep_subdir, replace=True)
OmegaConf.register_new_resolver("nag.outputs", outputs, replace=True)


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
    "nag.samplers": "nag.analysis.samplers",
    "nag.metrics": "nag.analysis.metrics",
    "nag.findings": "nag.analysis.findings",
    "nag.errors": "nag.config.errors",
    "nag.compose": "nag.config.compose",
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

"""What a trained run *is*: the one door every reader of a trained run goes through (``nag.load_run``; the entry
points ``nag.evaluate``, ``nag.sample``, ``nag.report``, ``nag.compare`` and the notebooks).

A run is opened from its run dir or one of its checkpoints: the checkpoint is read safely
(:mod:`nag.runs.checkpoint_file`: the archive, the allow-list, the shapes checked before anything is built), the
stored config is read as data (:mod:`nag.runs.stored_config`), and the data module is rebuilt from its ``data``
section with this machine's paths, checked against the allow-list, only when first asked for. What a run is (plain
or matched, which prior) is read from its checkpoint, not from config strings.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from torch import Tensor

from nag.analysis.evaluation import encode_images, reconstruct_images
from nag.config.errors import MissingFileError, UserInputError
from nag.model.inference import batched, resolve_device
from nag.model.latent_edit import attribute_directions
from nag.model.matching import NoMatching
from nag.model.priors import NormalPrior
from nag.runs.run_dir import CHECKPOINTS, CONFIG, SAMPLERS, RunDir
from nag.runs.stored_config import StoredConfig, local_paths
from nag.runs.trusted import build_stored
from nag.samplers.core import Sampler, make_sampler
from nag.training.module import NAGModule


@dataclass
class Run:
    """A trained run for notebooks and scripts (``nag.load_run``). Images are float ``(N, 3, H, W)`` in [0, 1],
    codes ``(N, d)``; results are on the CPU.

    Attributes:
        path: The run dir (None for a checkpoint outside one).
        checkpoint: The checkpoint the model was read from.
        model: The trained model, in eval mode, on ``device``.
    """

    path: Path | None
    checkpoint: Path
    model: NAGModule
    _data: Any = field(default=None, repr=False)
    _codes: dict[int, Tensor] = field(default_factory=dict, repr=False)
    _samplers: dict[tuple[str, int], Sampler] = field(default_factory=dict, repr=False)

    def _run_dir(self) -> RunDir:
        if self.path is None:
            raise MissingFileError(f"{self.checkpoint} is not inside a run dir (<run>/checkpoints/<name>.ckpt).")
        return RunDir(self.path)

    @property
    def config(self) -> StoredConfig:
        """The config the run was trained with (``.hydra/config.yaml``), read as data, never resolved as a whole."""
        return self._run_dir().config

    def data_config(self, paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` section of the stored config, with this machine's paths (``paths`` overrides them)."""
        return data_config(self._run_dir(), paths)

    @property
    def data(self) -> Any:
        """The data module the run trained on, rebuilt on first use (allow-list first, this machine's cache)."""
        if self._data is None:
            self._data = load_data(self._run_dir())
        return self._data

    # --- the model's operations, batched, on the CPU --------------------------------------------------------------

    def encode(self, images: Tensor) -> Tensor:
        """Codes ``(N, d)`` of images ``(N, 3, H, W)``."""
        return encode_images(self.model, images)

    def decode(self, codes: Tensor) -> Tensor:
        """Images ``(N, 3, H, W)`` decoded from codes ``(N, d)``."""
        return batched(self.model.decode, codes, self.model.device)

    def reconstruct(self, images: Tensor) -> Tensor:
        return reconstruct_images(self.model, images)

    def interpolate(self, a: Tensor, b: Tensor, steps: int = 11) -> Tensor:
        """Images decoded along the straight line between the codes of ``a`` and ``b``, both ends included:
        ``(steps, 3, H, W)`` for two images ``(3, H, W)``, ``(B, steps, 3, H, W)`` for two batches."""
        one = a.dim() == 3
        a, b = (a.unsqueeze(0), b.unsqueeze(0)) if one else (a, b)
        with torch.no_grad():
            line = self.model.interpolate(a.to(self.model.device), b.to(self.model.device), steps).float().cpu()
        return line[0] if one else line

    def training_codes(self, n: int = 5000) -> Tensor:
        """Codes of the first ``n`` training images (what ex-post samplers are fitted on), computed once."""
        if n not in self._codes:
            train = self.data.dataset("train")
            self._codes[n] = self.encode(self.data.fixed_batch("train", min(n, len(train)))[0])
        return self._codes[n]

    def sampler(self, name: str = "prior", n_fit: int = 5000) -> Sampler:
        """A sampler by name (``prior``, ``gaussian``, ``gmm``, ``gmm<k>``, ``flow``), fitted on the training codes
        as ``nag.evaluate`` fits it; a flow is stored beside the run (``samplers/``) and reused. Kept per run."""
        key = (name, n_fit)
        if key not in self._samplers:
            store = str(self.path / SAMPLERS) if self.path is not None else None
            sampler = make_sampler(name, store=store)
            codes = self.training_codes(n_fit) if sampler.needs_codes else torch.zeros(0, self.model.prior.dim)
            self._samplers[key] = sampler.fit(codes, self.model.prior)
        return self._samplers[key]

    def sample(self, n: int, sampler: str = "prior", seed: int = 0, n_fit: int = 5000) -> Tensor:
        """``n`` generated images: codes from ``sampler`` (the prior, or a density fitted to the training codes),
        decoded. The same draws as ``nag.sample`` / ``nag.evaluate`` for the same seed, sampler and ``n_fit``."""
        if n < 1:
            raise UserInputError(f"n={n}: ask for at least one sample.")
        return self.decode(self.sampler(sampler, n_fit).sample(n, seed=seed))

    def edit(self, images: Tensor, attribute: str, amount: float = 1.0, n_fit: int = 1000) -> Tensor:
        """Images with ``attribute`` added (``amount`` > 0) or removed (< 0): each code moved by ``amount`` times
        the attribute's direction in code space (mean code with it minus mean code without it, over the first
        ``n_fit`` training faces). Needs a dataset with attributes (CelebA, the synthetic faces)."""
        names = tuple(getattr(self.data, "attribute_names", ()))
        if not names:
            raise UserInputError(f"{self.path}: its data has no attributes to edit.")
        if attribute not in names:
            raise UserInputError(f"attribute {attribute!r} is not one of the data's: {', '.join(names)}.")
        train = self.data.dataset("train")
        x, attrs = self.data.fixed_batch("train", min(n_fit, len(train)))
        directions = attribute_directions(self.encode(x), attrs, names)
        if attribute not in directions:
            raise UserInputError(
                f"attribute {attribute!r}: too few of the {len(x)} training faces have it (or lack "
                "it) to estimate its direction; raise n_fit."
            )
        return self.decode(self.encode(images) + amount * directions[attribute])

    def evaluate(self, *overrides: str, out: str | Path | None = None) -> dict[str, Any]:
        """Evaluate the checkpoint as ``python -m nag.evaluate ckpt_path=<it> <overrides>`` does (it runs that
        command: the same checks, metrics and files) and return its ``metrics.json``. ``out``: its run dir
        (default ``<run>/evaluate``)."""
        out = Path(out) if out is not None else (self.path or self.checkpoint.parent) / "evaluate"
        run_entry_point("nag.evaluate", [f"ckpt_path={self.checkpoint}", *overrides, f"hydra.run.dir={out}"])
        metrics = RunDir(out).metrics
        if metrics is None:
            raise UserInputError(f"nag.evaluate wrote no readable metrics.json into {out}.")
        return metrics


def load_run(path: str | Path, device: str = "cpu", best: bool = True) -> Run:
    """Open a trained run: a run dir (its best checkpoint, or ``last.ckpt`` with ``best=False``) or a checkpoint
    file. Everything read goes through the entry points' safety checks; a refusal is a
    :class:`~nag.config.errors.UserInputError` naming the file.

    Args:
        path: A run dir (``outputs/<date>/<time>``) or a ``.ckpt`` file.
        device: Where the model runs (``auto``: the GPU when there is one).
        best: In a run dir, the best checkpoint (by validation loss) rather than the last.
    """
    return open_run(path, device, best)


def open_run(path: str | Path, device: str = "cpu", best: bool = True, key: str = "checkpoint") -> Run:
    """:func:`load_run`, with ``key`` the config key that named the file in messages (``ckpt_path``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        run = RunDir(p)
        ckpt = run.best_ckpt if best else run.last_ckpt
        if ckpt is None:
            raise MissingFileError(f"{p} has no checkpoint to load ({CHECKPOINTS}/*.ckpt as regular files).")
    elif p.exists():
        run, ckpt = RunDir.of_checkpoint(p), p
    else:
        raise MissingFileError(f"{key}={p} does not exist; give a run dir or a .ckpt file written by nag.train.")
    model = NAGModule.load_from_checkpoint(ckpt, map_location=resolve_device(device), _key=key).eval()
    return Run(run.path if run is not None else None, Path(ckpt), model)


def run_entry_point(module: str, args: Sequence[str]) -> None:
    """``python -m <module> <args>`` as the user would type it, its output shown as it comes (a notebook cell
    shows it); a failure raises :class:`UserInputError` with the command's last message."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    last = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        last = (last + [line.rstrip()])[-20:]
    if proc.wait() != 0:
        starts = [i for i, ln in enumerate(last) if ln.startswith("error: ")]
        shown = " ".join(ln.strip() for ln in last[starts[-1] :])[len("error: ") :] if starts else " / ".join(last[-3:])
        raise UserInputError(f"python -m {module} failed (exit status {proc.returncode}): {shown}")


def train_run(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Run:
    """Train as ``python -m nag.train <overrides>`` does (it runs that command: the same composition, checks,
    messages and run dir), then open the run (:func:`load_run`). ``run_dir``: where (default
    ``outputs/<date>/<time>``, as the command line)."""
    from datetime import datetime

    from nag.config.resolvers import fresh_dir

    if isinstance(overrides, str):
        raise TypeError("give the overrides as a list, e.g. nag.train(['experiment=quickstart'])")
    out = Path(run_dir) if run_dir is not None else Path(fresh_dir(f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}"))
    run_entry_point("nag.train", [*overrides, f"hydra.run.dir={out}"])
    return load_run(out)


def open_for_command(cfg: DictConfig, command: str, need_data: bool = True) -> tuple[NAGModule, str]:
    """What ``nag.evaluate`` and ``nag.sample`` read: the model of ``cfg.ckpt_path`` (through :func:`open_run`),
    ``cfg.model.latent_dim`` set from it (prior configs interpolate it) and ``cfg.data``, when not given, read as
    data from the checkpoint's run dir with this command's paths. Returns the model and where the data section
    came from (for messages)."""
    if not cfg.get("ckpt_path"):
        raise UserInputError(f"ckpt_path is required: python -m nag.{command} ckpt_path=<run>/checkpoints/last.ckpt")
    if Path(cfg.ckpt_path).is_dir():
        raise UserInputError(f"ckpt_path={cfg.ckpt_path} is a folder; give a .ckpt file (its checkpoints/last.ckpt).")
    run = open_run(cfg.ckpt_path, cfg.device, key="ckpt_path")
    where = "data"
    with open_dict(cfg):
        cfg.model.latent_dim = run.model.hparams.latent_dim
        if cfg.get("data") is None and need_data:
            if run.path is None or not RunDir(run.path).is_run:
                raise UserInputError(
                    f"no .hydra/config.yaml beside {cfg.ckpt_path}: say which data to use, e.g. data=synthetic"
                )
            # Read as data, with this command's paths (where the cache is written is this machine's business).
            cfg.data = run.data_config({"data_dir": cfg.paths.data_dir, "cache_dir": cfg.paths.cache_dir})
            where = f"data (from {run.path / CONFIG})"
    return run.model, where


def load_model(run: RunDir, device: str = "cpu", best: bool = True) -> NAGModule:
    """The trained model of ``run`` (see :func:`load_run`)."""
    return load_run(run.path, device, best).model


def data_config(run: RunDir, paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``data`` section of the run's stored config, with this machine's paths (``paths`` overrides them)."""
    return run.config.section("data", local_paths(run.path, paths))


def load_data(run: RunDir, paths: Mapping[str, Any] | None = None) -> Any:
    """The data module the run trained on, rebuilt safely (allow-list first)."""
    return build_stored(data_config(run, paths), f"{run.path / CONFIG} data")


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

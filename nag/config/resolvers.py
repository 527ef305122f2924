"""The ``${nag.*}`` resolvers the config tree uses, registered with OmegaConf when ``nag`` is imported (Hydra
resolves them while composing): run names, fresh run dirs, the run-dir base of each entry point, a continued
Optuna search's job dirs, the GPU's mixed precision. Imports only OmegaConf (torch when a trainer is built)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from omegaconf import OmegaConf

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

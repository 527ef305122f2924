"""nag: non-adversarial generative networks (autoencoders whose codes are matched to a prior)."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

#: The Hydra config tree, shipped inside the package (``nag/conf`` links to the top-level ``conf/``).
CONF_DIR = Path(__file__).resolve().parent / "conf"


def run_name(overrides: str) -> str:
    """A TensorBoard run name from Hydra's ``job.override_dirname`` ('' → 'default'); path separators and
    characters TensorBoard cannot show in a directory name become '_'."""
    return re.sub(r"[/\\:*?\"<>| ]", "_", overrides) or "default"


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


OmegaConf.register_new_resolver("nag.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("nag.fresh_dir", fresh_dir, use_cache=True, replace=True)

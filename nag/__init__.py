"""nag: non-adversarial generative networks (autoencoders whose codes are matched to a prior)."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

#: The Hydra config tree (``conf/`` next to the package; found from any working directory).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def run_name(overrides: str) -> str:
    """A TensorBoard run name from Hydra's ``job.override_dirname`` ('' → 'default'); path separators and
    characters TensorBoard cannot show in a directory name become '_'."""
    return re.sub(r"[/\\:*?\"<>| ]", "_", overrides) or "default"


OmegaConf.register_new_resolver("nag.run_name", run_name, replace=True)

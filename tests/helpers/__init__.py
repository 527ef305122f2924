"""What the tests share, in one place: the tiny settings every real run uses, running an entry point as a user
does, and the repository's paths. Fixtures live in ``tests/conftest.py``; CelebA copies in ``helpers/celeba.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The repository (README, conf/, notebooks/).
ROOT = Path(__file__).resolve().parent.parent.parent
CONF = ROOT / "conf"

#: The smallest real run (16-px faces, tiny net, 2 short epochs), plus no sanity check to save time.
TINY = ["debug=tiny", "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false"]
#: The same for fits in process: no callbacks, no logger (what the connection and module tests train).
TINY_FIT = ["debug=tiny", "callbacks=none", "logger=none", "trainer.num_sanity_val_steps=0",
            "trainer.enable_model_summary=false", "+trainer.enable_progress_bar=false",
            "+trainer.enable_checkpointing=false"]  # fmt: skip


def run_module(
    module: str, args: list[str], cwd: Path, cache_dir: Path, full_error: bool = True, fid: bool = False
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in ``cwd``, with the session's dataset cache; ``full_error=False`` shows what
    a user sees (without HYDRA_FULL_ERROR). FID is off (``NAG_FID=false``) unless ``fid``: its Inception network costs
    ~0.1 s per image on 2 cores, and the FID tests exercise it."""
    env = {**os.environ, "NAG_CACHE_DIR": str(cache_dir), "NAG_FID": "true" if fid else "false"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    else:
        env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


def faces(n: int, seed: int = 0, size: int = 32) -> Any:
    """``n`` embedded synthetic faces ``(n, 3, size, size)`` in [0, 1] (a float tensor)."""
    import torch

    from nag.data.faces import render, sample_params

    imgs = render([sample_params(seed, 0, i) for i in range(n)], size)
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255

"""``notebooks/explore_run.ipynb`` executes on a tiny run, on the public API only, and draws what it promises."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT

nbformat = pytest.importorskip("nbformat")
NotebookClient = pytest.importorskip("nbclient").NotebookClient

NOTEBOOK = ROOT / "notebooks" / "explore_run.ipynb"


def test_the_explorer_imports_nothing_but_the_public_api() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"\bfrom nag\.|\bimport nag\.", code), "the notebook reaches into nag's internals"
    import nag

    assert set(re.findall(r"\bnag\.(\w+)", code)) <= set(nag.__all__)


@pytest.mark.slow
def test_the_explorer_runs_on_a_tiny_run_and_draws_every_figure(
    tiny_run: Path, cache_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # the flow it fits is stored beside the copy
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"NAG_RUN_DIR": str(run), "NAG_N_FIT": "100", "NAG_CACHE_DIR": str(cache_dir)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 6, "samplers, reconstructions, interpolation, edit, histograms, projection"
    for png in pngs:
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("L"), dtype=float)
        assert pixels.std() > 1.0, "a blank figure"
    text = "".join(o.get("text", "") for o in outputs)
    assert f"run {run}" in text and "codes: mean" in text
    assert list((run / "samplers").glob("flow-*.pt")), "the flow sampler was fitted and stored beside the run"

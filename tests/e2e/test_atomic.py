"""Caches and JSON artifacts under a hard kill: SIGKILL of a real writing process at random moments leaves the old
file or the new one (the cache: none or a complete one), never a torn one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nag.data.cache import open_cache
from nag.data.synthetic import SyntheticFaces

_JSON_WRITER = """
import sys
from pathlib import Path
from nag.io.output import write_json_atomic
target, i = Path(sys.argv[1]), 0
while True:
    i += 1
    write_json_atomic(target, {"i": i, "values": [i] * 200_000})
    if i == 1:
        print("written", flush=True)
"""

_CACHE_BUILDER = """
import sys
from nag.data.synthetic import SyntheticFaces
print("started", flush=True)
SyntheticFaces(image_size=16, n_train=6000, n_val=16, n_test=16, batch_size=16, cache_dir=sys.argv[1]).prepare_data()
"""


def _kill_after(args: list[str], delay: float) -> None:
    p = subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    p.stdout.readline()
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_json_artifacts_survive_sigkill(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    for delay in (0.05, 0.2, 0.45):
        _kill_after([_JSON_WRITER, str(target)], delay)
        data = json.loads(target.read_text())  # a torn write would not parse
        assert data["values"] == [data["i"]] * 200_000
    assert not [p for p in tmp_path.iterdir() if p.name != "metrics.json" and not p.name.startswith(".")]


def test_a_cache_build_killed_at_any_moment_is_rebuilt_or_complete(tmp_path: Path) -> None:
    """Killed while rendering, the build leaves no cache (only a hidden partial directory, never trusted); the next
    run builds the same pixels a clean build gives."""
    cache = tmp_path / "cache"
    for delay in (0.2, 0.6, 1.2):
        _kill_after([_CACHE_BUILDER, str(cache)], delay)
        finals = list(cache.glob("synthetic-train-*"))  # only a complete cache may carry the final name
        if delay == 0.2:
            assert not finals and list(cache.glob(".synthetic-train-*.partial")), "killed mid-build"
        for split in finals:
            opened = open_cache(split)
            assert opened.images.shape[0] == opened.meta["n"] == 6000
    dm = SyntheticFaces(image_size=16, n_train=6000, n_val=16, n_test=16, batch_size=16, cache_dir=str(cache))
    dm.prepare_data()
    clean = SyntheticFaces(
        image_size=16, n_train=6000, n_val=16, n_test=16, batch_size=16, cache_dir=str(tmp_path / "clean")
    )
    clean.prepare_data()
    assert np.array_equal(dm.split_cache("train").images, clean.split_cache("train").images)

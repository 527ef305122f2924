"""``python -m nag.bench --quick --out bench.json`` runs every measurement and writes every field."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from nag.bench.cli import TARGETS, table
from nag.bench.parts import DISTANCES


def test_quick_bench_writes_every_field_and_prints_every_row(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "NAG_CACHE_DIR": str(cache_dir)}
    r = subprocess.run(
        [sys.executable, "-m", "nag.bench", "--quick", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] is True and results["device"] == "cpu"
    cuda_only = {(section, key) for section, key in TARGETS if section == "gpu" or key.startswith("cuda_")}
    assert results["gpu"] == {} and "cuda_images_per_s" not in results["fid"]  # no CUDA here
    for section, key in set(TARGETS) - cuda_only:
        value = results[section][key]
        assert isinstance(value, int | float) and math.isfinite(value), (section, key, value)
        assert value >= 0, (section, key)
    # every row of the table is printed, with its target, and nothing is judged against targets on tiny settings
    for (section, key), (label, *_) in TARGETS.items():
        assert (label in r.stdout) is ((section, key) not in cuda_only), label
    assert "MISSED" not in r.stdout and "(quick)" in r.stdout
    # measurements that can be wrong in a way the numbers show
    for distance in DISTANCES:  # every distance of conf/matching/
        assert 0 < results["matching"][distance] < 1  # a share of a step that contains it
    assert 0 <= results["loop"]["callbacks_share"] < 1
    assert results["loop"]["validation_s"] < results["loop"]["epoch_s"]  # validation is part of the epoch
    assert results["loop"]["bare_validation_s"] <= results["loop"]["validation_s"]  # figures cost something
    assert results["data"]["images"] == 96  # the 80 % train partition of the generated 120-image copy
    assert results["data"]["speedup"] > 1  # the cache beats decoding JPEGs even at 16 px
    assert results["model"]["bytes_per_image"] == 3 * 16 * 16
    assert 0 < results["quickstart"]["test_recon"] < 1  # a per-pixel MSE of images in [0, 1]
    assert results["startup"]["bad_config_s"] < 60


def test_table_judges_each_target_in_its_direction() -> None:
    results = {
        "quick": False,
        "loop": {"ratio": 0.95},  # >= 0.97 wanted
        "matching": {"mmd_imq": 0.02, "swd": 0.08},  # <= 5 % wanted
        "startup": {"bad_config_s": 1.0},
    }
    lines = {line.split("  ")[0]: line for line in table(results).splitlines()}
    assert lines["nag / plain loop"].endswith("MISSED")
    assert lines["mmd_imq share of a step (batch 128, d 64)"].endswith("ok")
    assert lines["swd share of a step (batch 128, d 64)"].endswith("MISSED")
    assert lines["bad config value reported after (s)"].endswith("ok")
    assert "moments share" not in table(results)  # only what was measured

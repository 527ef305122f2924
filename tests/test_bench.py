"""The benchmark entry point runs on a tiny generated copy and reports every number it promises."""

from __future__ import annotations

import math

from nag.bench import main


def test_bench_reports_every_measurement_on_a_tiny_copy(tmp_path) -> None:
    out = tmp_path / "bench.json"
    r = main(["--n-images", "200", "--image-size", "16", "--crop", "100", "--batch-size", "16", "--steps", "3",
              "--workers", "0", "--out", str(out)])  # fmt: skip
    assert r["images"] == 160  # the 80 % train partition of the generated copy
    for key in ("jpeg_images_per_s", "cached_images_per_s", "cache_build_s", "train_step_s"):
        assert r[key] > 0 and math.isfinite(r[key]), key
    assert 0 < r["loader_share"] < 1
    assert r["speedup"] == r["cached_images_per_s"] / r["jpeg_images_per_s"]
    assert out.read_text().count('"speedup"') == 1

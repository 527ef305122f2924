"""The synthetic-faces dataset: determinism, attribute frequencies, served format, the atomic cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nag.data import cache as cache_mod
from nag.data.faces import (
    ATTRIBUTE_NAMES,
    P_BEARD,
    P_EYEGLASSES,
    P_HAT,
    P_SUNGLASSES,
    attributes,
    render,
    sample_params,
)
from nag.data.synthetic import SyntheticFaces, render_faces


def test_faces_are_deterministic_per_seed_split_index() -> None:
    a = render([sample_params(0, 0, i) for i in (3, 7)], 32)
    b = render([sample_params(0, 0, 7)], 32)
    assert np.array_equal(a[1], b[0]), "a face must not depend on the other faces of its chunk"
    assert not np.array_equal(render([sample_params(1, 0, 7)], 32)[0], b[0])
    assert not np.array_equal(render([sample_params(0, 1, 7)], 32)[0], b[0])


def test_attribute_frequencies_are_celeba_like() -> None:
    att = np.stack([attributes(sample_params(0, 0, i)) for i in range(6000)]).mean(0)
    freq = dict(zip(ATTRIBUTE_NAMES, att, strict=True))
    se = lambda p: 4 * np.sqrt(p * (1 - p) / 6000)  # noqa: E731
    assert abs(freq["Eyeglasses"] - P_EYEGLASSES) < se(P_EYEGLASSES)
    assert abs(freq["Sunglasses"] - P_SUNGLASSES) < se(P_SUNGLASSES)
    assert abs((1 - freq["No_Beard"]) - P_BEARD) < se(P_BEARD)
    assert abs(freq["Wearing_Hat"] - P_HAT) < se(P_HAT)
    assert freq["Sunglasses"] < 0.05 and freq["No_Beard"] > 0.85  # rare features are rare
    hair = [freq[k] for k in ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair", "Red_Hair", "Bald")]
    assert sum(hair) == pytest.approx(1.0), "every face has exactly one hair colour or is bald"


def test_attributes_change_the_pixels() -> None:
    # Two faces identical but for sunglasses differ only around the eyes.
    p = sample_params(0, 0, 0)
    q = {**p, "sunglasses": np.float32(1), "eyeglasses": np.float32(0)}
    p = {**p, "sunglasses": np.float32(0), "eyeglasses": np.float32(0)}
    a, b = render([p, q], 64).astype(int)
    diff = np.abs(a - b).sum(-1) > 30
    rows = np.where(diff.any(1))[0]
    assert diff.sum() > 50 and rows.max() - rows.min() < 20, "sunglasses are a band across the eyes"


def test_datamodule_serves_float_images_and_attributes(cache_dir: Path) -> None:
    dm = SyntheticFaces(n_train=64, n_val=32, n_test=32, image_size=16, batch_size=16, cache_dir=str(cache_dir))
    dm.prepare_data()
    dm.setup()
    x, a = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.05
    assert a.shape == (16, len(ATTRIBUTE_NAMES)) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert len(dm.dataset("val")) == 32
    xv, _ = dm.fixed_batch("val", 4)
    assert torch.equal(xv, dm.fixed_batch("val", 4)[0])
    with pytest.raises(ValueError, match="the val split has 32 images"):
        dm.fixed_batch("val", 40)


def test_cache_is_reused_and_keyed_by_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting_fill(indices, **kw):
        calls.append(len(indices))
        return render_faces(indices, **kw)

    monkeypatch.setattr("nag.data.synthetic.render_faces", counting_fill)
    kw = dict(n_train=32, n_val=16, n_test=16, batch_size=16, cache_dir=str(tmp_path))
    SyntheticFaces(image_size=16, **kw).prepare_data()
    assert sum(calls) == 64
    SyntheticFaces(image_size=16, **kw).prepare_data()
    assert sum(calls) == 64, "second use must read the cache, not render again"
    SyntheticFaces(image_size=32, **kw).prepare_data()
    assert sum(calls) == 128, "a new image size is a new cache"
    dirs = sorted(p.name for p in tmp_path.iterdir())
    assert len(dirs) == 6 and all(d.startswith("synthetic-") for d in dirs)
    meta = json.loads((tmp_path / dirs[0] / "meta.json").read_text())
    assert meta["attribute_names"] == list(ATTRIBUTE_NAMES)


def test_interrupted_build_leaves_nothing_that_is_trusted(tmp_path: Path) -> None:
    def failing_fill(indices):
        if indices[0] >= 16:
            raise KeyboardInterrupt  # the user pressed Ctrl-C half way
        return render_faces(indices, seed=0, split=0, image_size=16)

    settings = {"dataset": "test"}
    with pytest.raises(KeyboardInterrupt):
        cache_mod.load_or_build(
            tmp_path, "t", settings, range(32), 16, len(ATTRIBUTE_NAMES), failing_fill, chunk_size=16, workers=1
        )
    assert list(tmp_path.iterdir()) == [], "the partial build must be removed, not left to be trusted"
    ok = cache_mod.load_or_build(
        tmp_path,
        "t",
        settings,
        range(32),
        16,
        len(ATTRIBUTE_NAMES),
        lambda idx: render_faces(idx, seed=0, split=0, image_size=16),
        chunk_size=16,
        workers=1,
    )
    assert ok.images.shape == (32, 16, 16, 3) and ok.images[20].std() > 0


def test_parallel_build_equals_serial_build(tmp_path: Path) -> None:
    from functools import partial

    fill = partial(render_faces, seed=0, split=0, image_size=16)
    args = (range(40), 16, len(ATTRIBUTE_NAMES), fill)
    a = cache_mod.load_or_build(tmp_path / "a", "t", {}, *args, chunk_size=8, workers=1)
    b = cache_mod.load_or_build(tmp_path / "b", "t", {}, *args, chunk_size=8, workers=2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.attributes, b.attributes)


def test_training_split_smaller_than_a_batch_is_refused_small_eval_splits_are_not() -> None:
    from nag.config.errors import ConfigError

    with pytest.raises(ConfigError, match=r"training split has 8 images, fewer than data.batch_size=16"):
        SyntheticFaces(n_train=8, batch_size=16)
    dm = SyntheticFaces(n_train=16, n_val=1, n_test=3, batch_size=16)  # nothing is rendered yet
    dm.check_split_sizes(min_eval_batch=1)
    with pytest.raises(ConfigError, match=r"the val split has 1 image\(s\); at least 2 .* Raise data.n_val"):
        dm.check_split_sizes(min_eval_batch=2)


@pytest.mark.parametrize("batch_size", [2, 3, 4, 16, 64])
def test_evaluation_batches_use_every_image_in_near_equal_batches(batch_size: int) -> None:
    from torch.utils.data import SequentialSampler

    from nag.data.datamodule import BalancedBatchSampler

    for n in range(1, 300):
        sampler = BalancedBatchSampler(SequentialSampler(range(n)), batch_size, drop_last=False)
        batches = list(sampler)
        sizes = [len(b) for b in batches]
        assert len(batches) == len(sampler)
        assert [i for b in batches for i in b] == list(range(n)), "every image once, in order"
        assert max(sizes) - min(sizes) <= 1, sizes
        assert n < 2 or min(sizes) >= 2, f"n={n}: a batch of one (the unbiased MMD is undefined on it)"
        assert max(sizes) <= max(batch_size, 3), sizes


def test_batched_reads_equal_item_reads_and_flip_only_mirrors(cache_dir: Path) -> None:
    dm = SyntheticFaces(n_train=32, n_val=16, n_test=16, image_size=16, batch_size=16, cache_dir=str(cache_dir))
    ds = dm.dataset("val")
    x, a = ds.__getitems__([5, 2, 9])
    assert torch.equal(x[1], ds[2][0]) and torch.equal(a[2], ds[9][1])
    loader_x, _ = next(iter(dm.val_dataloader()))
    assert torch.equal(loader_x, torch.stack([ds[i][0] for i in range(16)]))
    ds.flip = True
    torch.manual_seed(0)
    flipped, _ = ds.__getitems__(list(range(16)))
    ds.flip = False
    plain, _ = ds.__getitems__(list(range(16)))
    mirrored = [torch.equal(flipped[i], plain[i].flip(-1)) for i in range(16)]
    unchanged = [torch.equal(flipped[i], plain[i]) for i in range(16)]
    assert all(m or u for m, u in zip(mirrored, unchanged, strict=True)) and any(mirrored) and any(unchanged)

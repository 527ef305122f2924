"""CelebA on disk: layouts, splits, attributes, the cache, bad files and bad metadata — on generated copies."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nag.data.celeba as celeba_mod
from nag.data.celeba import CelebA
from nag.data.celeba_layout import CelebANotFoundError, detect_layout
from nag.data.celeba_metadata import CelebAMetadataError
from nag.data.images import preprocess
from tests.helpers import run_module
from tests.helpers.celeba import (
    CELEBA_ATTRIBUTES,
    HEIGHT,
    OFFICIAL,
    WIDTH,
    attribute_table,
    face_jpeg,
    write_folder,
    write_kaggle,
    write_torchvision,
)

SIZES = {"train": 20, "val": 8, "test": 8}


def make(root: Path, cache: Path, **kw) -> CelebA:
    args = dict(root=str(root), image_size=16, crop=40, batch_size=4, cache_dir=str(cache)) | kw
    dm = CelebA(**args)
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.mark.parametrize(
    ("writer", "kind"),
    [(write_torchvision, "torchvision"), (write_kaggle, "kaggle"), (write_folder, "folder")],
)
def test_each_layout_is_detected(tmp_path: Path, writer, kind) -> None:
    writer(tmp_path)
    assert detect_layout(tmp_path).kind == kind


def test_torchvision_layout_is_also_found_in_the_celeba_folder_itself(tmp_path: Path) -> None:
    base = write_torchvision(tmp_path)
    layout = detect_layout(base)
    assert layout.kind == "torchvision" and layout.partition_file == base / "list_eval_partition.txt"


@pytest.mark.parametrize("writer", [write_torchvision, write_kaggle])
def test_official_splits_and_attributes(tmp_path: Path, writer) -> None:
    writer(tmp_path / "data")
    dm = make(tmp_path / "data", tmp_path / "cache")
    assert {s: len(dm.dataset(s)) for s in SIZES} == SIZES
    assert dm.attribute_names == tuple(CELEBA_ATTRIBUTES)
    table = attribute_table(list(OFFICIAL))
    val_names = [n for n, s in OFFICIAL.items() if s == 1]
    x, a = dm.dataset("val")[3]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert torch.equal(a, torch.tensor((table[val_names[3]] > 0).astype(np.float32)))


def test_cached_pixels_are_the_crop_and_antialiased_resize_of_the_jpeg(tmp_path: Path) -> None:
    base = write_torchvision(tmp_path)
    dm = make(tmp_path, tmp_path / "cache")
    with Image.open(base / "img_align_celeba" / "000001.jpg") as im:
        assert im.size == (WIDTH, HEIGHT)
        expected = torch.from_numpy(preprocess(im, 40, 16)).permute(2, 0, 1).float() / 255
    assert torch.equal(dm.dataset("train")[0][0], expected)


def test_missing_partition_file_falls_back_to_official_ranges(tmp_path: Path, caplog) -> None:
    write_torchvision(tmp_path, partition=False)
    with caplog.at_level(logging.WARNING):
        dm = make(tmp_path, tmp_path / "cache")
    assert dm.index.split_source == "official ranges"
    assert {s: len(dm.dataset(s)) for s in SIZES} == SIZES
    assert "official index ranges" in caplog.text


def test_missing_attribute_file_serves_images_without_attributes(tmp_path: Path) -> None:
    write_torchvision(tmp_path, attributes=False)
    dm = make(tmp_path, tmp_path / "cache")
    x, a = dm.dataset("train")[0]
    assert dm.attribute_names == () and a.shape == (0,) and x.shape == (3, 16, 16)


def test_plain_folder_gets_a_seeded_disjoint_split(tmp_path: Path) -> None:
    write_folder(tmp_path / "faces", n=40)
    dm = make(tmp_path / "faces", tmp_path / "cache")
    files = dm.index.files
    assert [len(files[s]) for s in ("train", "val", "test")] == [32, 4, 4]
    assert set(files["train"]).isdisjoint(files["val"]) and set(files["val"]).isdisjoint(files["test"])
    again = CelebA(root=str(tmp_path / "faces"), cache_dir=str(tmp_path / "cache"), batch_size=4).index.files
    other = CelebA(root=str(tmp_path / "faces"), cache_dir=str(tmp_path), batch_size=4, split_seed=1).index.files
    assert again == files and other != files


def test_cache_is_reused_and_rebuilt_when_crop_or_size_change(tmp_path: Path, monkeypatch) -> None:
    write_torchvision(tmp_path / "data")
    decoded: list[int] = []
    real = celeba_mod.decode_images

    def counting(items, **kw):
        decoded.append(len(items))
        return real(items, **kw)

    monkeypatch.setattr(celeba_mod, "decode_images", counting)
    make(tmp_path / "data", tmp_path / "cache")
    assert sum(decoded) == 36
    make(tmp_path / "data", tmp_path / "cache")
    assert sum(decoded) == 36, "the second run must read the cache, not the JPEGs"
    make(tmp_path / "data", tmp_path / "cache", crop=30)
    assert sum(decoded) == 72, "a new crop is a new cache"
    make(tmp_path / "data", tmp_path / "cache", image_size=32)
    assert sum(decoded) == 108, "a new size is a new cache"


def test_interrupted_cache_build_is_not_trusted(tmp_path: Path, monkeypatch) -> None:
    write_torchvision(tmp_path / "data")
    real = celeba_mod.decode_images

    def interrupted(items, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(celeba_mod, "decode_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "data", tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir()), "no partial cache may remain"
    monkeypatch.setattr(celeba_mod, "decode_images", real)
    dm = make(tmp_path / "data", tmp_path / "cache")
    assert dm.dataset("train")[0][0].std() > 0.05


def test_corrupt_jpegs_are_skipped_counted_and_reported(tmp_path: Path, caplog) -> None:
    base = write_torchvision(tmp_path / "data")
    good = face_jpeg(0)
    (base / "img_align_celeba" / "000005.jpg").write_bytes(good[: len(good) // 3])  # truncated
    (base / "img_align_celeba" / "000006.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(RuntimeError, match=r"2 of 20 CelebA train images .* data.max_bad_fraction=0.001"):
        make(tmp_path / "data", tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        dm = make(tmp_path / "data", tmp_path / "cache", max_bad_fraction=0.2)
    assert len(dm.dataset("train")) == 18
    assert "skipped 2 unreadable image(s) of 20" in caplog.text and "000005.jpg" in caplog.text


def test_grayscale_and_odd_sized_images_are_converted(tmp_path: Path) -> None:
    base = write_torchvision(tmp_path / "data")
    (base / "img_align_celeba" / "000001.jpg").write_bytes(face_jpeg(0, mode="L"))
    (base / "img_align_celeba" / "000002.jpg").write_bytes(face_jpeg(1, size=(23, 90)))
    dm = make(tmp_path / "data", tmp_path / "cache", crop=148)  # crop larger than every image
    gray, _ = dm.dataset("train")[0]
    odd, _ = dm.dataset("train")[1]
    assert gray.shape == odd.shape == (3, 16, 16)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert odd.std() > 0.02


def test_no_celeba_message_lists_every_route(tmp_path: Path) -> None:
    with pytest.raises(CelebANotFoundError) as e:
        make(tmp_path / "nothing", tmp_path / "cache")
    msg = str(e.value)
    for part in (
        str(tmp_path / "nothing"),
        "celeba/img_align_celeba",
        "img_align_celeba/img_align_celeba",
        "list_eval_partition.csv",
        "data.download=true",
        "kaggle",
        "data=synthetic",
    ):
        assert part in msg, part
    root = tmp_path / "nothing"  # every place searched and every route names the folder the user gave
    for part in (
        f"data.root={root} (resolved to {root.resolve()})",
        f"{root}/celeba/img_align_celeba/*.jpg",
        f"{root}/img_align_celeba/img_align_celeba/*.jpg",
        f"directly in {root}\n",
        f"unzip the archive into {root}\n",
        f"unzipped into {root}/celeba\n",
    ):
        assert part in msg, part


def test_failed_download_explains_the_quota_and_manual_routes(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets

    class QuotaExceeded:  # what torchvision raises when Drive serves its quota page instead of the zip
        def __init__(self, *a, **kw):
            raise RuntimeError("The MD5 checksum of the download file img_align_celeba.zip does not match")

    monkeypatch.setattr(torchvision.datasets, "CelebA", QuotaExceeded)
    with pytest.raises(CelebANotFoundError, match=r"(?s)download failed.*quota.*kaggle datasets download"):
        make(tmp_path / "data", tmp_path / "cache", download=True)


def _partition(tmp_path: Path) -> Path:
    return write_torchvision(tmp_path / "data") / "list_eval_partition.txt"


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda p: p.write_text(p.read_text().replace("000003.jpg 0", "000003.jpg")),
            r"list_eval_partition.txt, line 3",
        ),
        (
            lambda p: p.write_text(p.read_text().replace("000004.jpg 0", "000004.jpg 7")),
            r"list_eval_partition.txt, line 4",
        ),
        (lambda p: p.write_text(p.read_text() + "999999.jpg 2\n"), r"line 37: lists 999999.jpg, which is not in"),
        (lambda p: p.write_text(p.read_text().replace("000009.jpg 0\n", "")), r"does not list 1 image.*000009.jpg"),
    ],
    ids=["missing-column", "bad-split-id", "image-missing-on-disk", "image-not-listed"],
)
def test_bad_partition_files_name_file_and_line(tmp_path: Path, corrupt, message) -> None:
    corrupt(_partition(tmp_path))
    with pytest.raises(CelebAMetadataError, match=message):
        make(tmp_path / "data", tmp_path / "cache")


def test_bad_attribute_rows_name_file_and_line(tmp_path: Path) -> None:
    attr = write_torchvision(tmp_path / "data") / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines(keepends=True)
    lines[4] = lines[4].rsplit(" ", 3)[0] + "\n"  # drop values from the row of 000003.jpg
    attr.write_text("".join(lines))
    with pytest.raises(CelebAMetadataError, match=r"list_attr_celeba.txt, line 5: expected an image name and 40"):
        make(tmp_path / "data", tmp_path / "cache")


def test_kaggle_csv_malformed_row(tmp_path: Path) -> None:
    write_kaggle(tmp_path)
    csv = tmp_path / "list_attr_celeba.csv"
    csv.write_text(
        csv.read_text().replace("000002.jpg,-1", "000002.jpg,0", 1).replace("000002.jpg,1", "000002.jpg,0", 1)
    )
    with pytest.raises(CelebAMetadataError, match=r"list_attr_celeba.csv, line 3"):
        make(tmp_path, tmp_path / "cache")


@pytest.mark.slow
def test_train_on_celeba_through_the_real_entry_point(tmp_path: Path) -> None:
    import json

    write_kaggle(tmp_path / "celeba")
    args = [
        "debug=tiny",
        "data=celeba",
        f"data.root={tmp_path / 'celeba'}",
        "data.crop=40",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "callbacks.interpolation.n_pairs=2",
        "callbacks.samples.n=8",
    ]
    r = run_module("nag.train", args, tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = (tmp_path / "outputs").glob("*/*")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/recon"] > 0 and (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").iterdir()) == ["test", "train", "val"]


def test_missing_root_through_the_entry_point_is_one_clear_message(tmp_path: Path) -> None:
    r = run_module("nag.train", ["debug=fdr", f"data.root={tmp_path}/none"], tmp_path, tmp_path / "c")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, "a missing dataset is a user error, not a crash"
    assert r.stderr.count("No CelebA found") == 1
    assert f"No CelebA found under data.root={tmp_path}/none" in r.stderr and "data=synthetic" in r.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split_fractions": [0.9, 0.1]}, r"split_fractions=\[0.9, 0.1\] must have 3 values \(train, val, test\)"),
        ({"split_fractions": [0.9, 0.1, 0.0]}, r"split_fractions=\[0.9, 0.1, 0.0\] must be > 0"),
        ({"max_bad_fraction": 1.5}, r"max_bad_fraction=1.5 must be < 1"),
        ({"crop": 0}, "crop=0 is smaller than image_size=64: the crop would be upscaled"),
        ({"crop": 60}, "CelebA: crop=60 is smaller than image_size=64"),
    ],
)
def test_bad_settings_are_refused_at_construction(tmp_path: Path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        CelebA(root=str(tmp_path), **kwargs)


def test_a_repaired_jpeg_is_used_on_the_next_run(tmp_path: Path, caplog) -> None:
    base = write_torchvision(tmp_path / "data")
    broken = base / "img_align_celeba" / "000006.jpg"
    good = face_jpeg(5)
    broken.write_bytes(b"\xff" * len(good))  # the same size as the repaired file will have
    stamp = broken.stat().st_mtime_ns
    with pytest.raises(RuntimeError, match=r"1 of 20 CelebA train images"):
        make(tmp_path / "data", tmp_path / "cache")
    broken.write_bytes(good)  # repaired in place, its size and time kept (rsync -t, cp -p): same cache key
    os.utime(broken, ns=(stamp, stamp))
    with caplog.at_level(logging.WARNING):
        dm = make(tmp_path / "data", tmp_path / "cache")
    assert len(dm.dataset("train")) == 20
    assert "1 image(s) unreadable when the cache was built now decode" in caplog.text
    x, _ = dm.dataset("train")[5]  # 000006.jpg is the sixth training image
    expected = preprocess(Image.open(broken), 40, 16)
    assert torch.equal(x, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    assert len(list((tmp_path / "cache").glob("celeba-train-*"))) == 1, "the stale cache was replaced, not kept"


def test_a_photo_replaced_under_the_same_name_is_decoded_again(tmp_path: Path) -> None:
    base = write_torchvision(tmp_path / "data")
    first = make(tmp_path / "data", tmp_path / "cache")
    x_old, _ = first.dataset("train")[5]
    photo = base / "img_align_celeba" / "000006.jpg"
    photo.write_bytes(face_jpeg(17))  # another face, same name (a new copy of the data set)
    second = make(tmp_path / "data", tmp_path / "cache")
    x_new, _ = second.dataset("train")[5]
    expected = torch.from_numpy(preprocess(Image.open(photo), 40, 16)).permute(2, 0, 1).float() / 255
    assert torch.equal(x_new, expected) and not torch.equal(x_old, x_new), "the old cached pixels were served"
    (tmp_path / "data" / "celeba" / "list_attr_celeba.txt").touch()  # metadata re-extracted: re-keyed too
    make(tmp_path / "data", tmp_path / "cache").dataset("train")
    assert len(list((tmp_path / "cache").glob("celeba-train-*"))) == 3


def _edit_meta(cache: Path, **changes) -> None:
    meta = json.loads((cache / "meta.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    (cache / "meta.json").write_text(json.dumps(meta))


def _images_through_a_link(cache: Path) -> None:
    """images.npy a link to another array (a planted file): never read through."""
    other = cache.parent / "elsewhere.npy"
    np.save(other, np.zeros((20, 16, 16, 3), np.uint8))
    (cache / "images.npy").unlink()
    (cache / "images.npy").symlink_to(other)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "images.npy").write_bytes((d / "images.npy").read_bytes()[:1000]),  # truncated
        lambda d: (d / "images.npy").unlink(),  # deleted
        lambda d: (d / "meta.json").write_text('{"n": 20, "sett'),  # torn metadata
        lambda d: (d / "meta.json").write_text('{"n": 7}'),  # metadata that disagrees with the arrays
        lambda d: (d / "attributes.npy").write_bytes(b"garbage"),
        lambda d: _edit_meta(d, bad_indices=[999]),  # an index past the split
        lambda d: _edit_meta(d, bad_indices=None),  # missing
        lambda d: _edit_meta(d, bad_indices=[-1]),
        lambda d: _edit_meta(d, settings={"crop": 99}),  # another cache's metadata
        lambda d: _edit_meta(d, n=True),
        _images_through_a_link,
    ],
    ids=[
        "truncated",
        "deleted",
        "torn-meta",
        "wrong-n",
        "garbage-attributes",
        "bad-index-past-the-end",
        "bad-indices-missing",
        "bad-index-negative",
        "other-settings",
        "n-not-a-count",
        "images-a-link",
    ],
)
def test_a_damaged_cache_is_rebuilt_with_a_warning_naming_it(tmp_path: Path, caplog, damage) -> None:
    write_torchvision(tmp_path / "data")
    first = make(tmp_path / "data", tmp_path / "cache").dataset("train").images.copy()
    (cache,) = (tmp_path / "cache").glob("celeba-train-*")
    damage(cache)
    with caplog.at_level(logging.WARNING):
        dm = make(tmp_path / "data", tmp_path / "cache")
    assert f"cache {cache} is damaged" in caplog.text and "rebuilding it" in caplog.text
    assert np.array_equal(dm.dataset("train").images, first)
    assert [p.name for p in (tmp_path / "cache").glob("*train*")] == [cache.name], "no leftovers beside it"
    assert not (cache / "images.npy").is_symlink()


def test_an_unwritable_cache_dir_is_one_message(tmp_path: Path) -> None:
    from nag.config.errors import UserInputError

    write_torchvision(tmp_path / "data")
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(UserInputError, match=r"cannot write the dataset cache in .*afile/cache .*NAG_CACHE_DIR"):
        make(tmp_path / "data", tmp_path / "afile" / "cache")


@pytest.mark.slow
def test_a_handful_of_photos_trains_with_small_validation_and_test_splits(tmp_path: Path, caplog) -> None:
    """30 photos of one's own (seeded split 24/3/3) at batch size 4: evaluation batches of 3, figures from 3
    validation images (1 interpolation pair), each said once."""
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_folder(tmp_path / "photos", n=30)
    args = [
        "debug=tiny",
        "data=celeba",
        f"data.root={tmp_path / 'photos'}",
        "data.crop=40",
        "data.batch_size=4",
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp_path}/run",
    ]
    r = run_module("nag.train", args, tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/loss"] > 0 and metrics["val/matching"] == metrics["val/matching"]  # finite, not NaN
    (tb,) = (run / "tensorboard").iterdir()
    ea = EventAccumulator(str(tb), size_guidance={"images": 0})
    ea.Reload()
    side, up = 16 + 2, 4  # 16-px faces are shown 4x larger
    assert (ea.Images("images/interpolation")[-1].height, ea.Images("images/interpolation")[-1].width) == (
        up * (side + 2),
        up * (11 * side + 2),
    )
    assert ea.Images("images/reconstructions")[-1].width == up * (3 * side + 2)
    log = (run / "train.log").read_text()
    assert log.count("interpolating 1 pair(s) instead of 2") == 1 and log.count("reconstructing 3 instead of 8") == 1

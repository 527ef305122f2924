"""The data module every dataset shares: what its loaders are built with, which images a split serves (bad ones
skipped), the checks of its settings and split sizes, and where the on-device path keeps its tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nag.config.errors import ConfigError
from nag.data.cache import CachedSplit
from nag.data.datamodule import BalancedBatchSampler, CachedImages, keep_batch
from nag.data.synthetic import SyntheticFaces


def faces(cache_dir: Path, **kwargs: object) -> SyntheticFaces:
    """A tiny synthetic data module (16 px) over the session's cache: 40 train, 10 val, 6 test images."""
    settings = {
        "n_train": 40,
        "n_val": 10,
        "n_test": 6,
        "image_size": 16,
        "batch_size": 16,
        "cache_dir": str(cache_dir),
        **kwargs,
    }
    return SyntheticFaces(**settings)


def split(n: int, bad: list[int] | None = None) -> CachedSplit:
    """A cache in memory whose image i is filled with the value i, with attribute row i = (i, i + 1)."""
    images = np.repeat(np.arange(n, dtype=np.uint8), 4 * 4 * 3).reshape(n, 4, 4, 3)
    attributes = np.stack([np.arange(n), np.arange(n) + 1], 1).astype(np.uint8)
    return CachedSplit(Path("."), images, attributes, {"bad_indices": bad or []})


@pytest.mark.parametrize("device", [None, "cpu"])
def test_unusable_images_are_skipped_and_attributes_stay_aligned(device: str | None) -> None:
    ds = CachedImages(split(6, bad=[1, 4]), device=device)
    assert len(ds) == 4
    x, a = ds.__getitems__([0, 1, 2, 3])
    assert x.shape == (4, 3, 4, 4) and x.dtype == torch.float32
    assert (x * 255).round().amax(dim=(1, 2, 3)).tolist() == [0, 2, 3, 5]  # rows 1 and 4 never served
    assert a.tolist() == [[0, 1], [2, 3], [3, 4], [5, 6]]
    x1, a1 = ds[2]
    assert x1.shape == (3, 4, 4) and (x1 * 255).round().max().item() == 3 and a1.tolist() == [3, 4]
    assert keep_batch((x, a)) == (x, a)


def test_on_device_the_images_are_kept_as_uint8_where_asked() -> None:
    ds = CachedImages(split(5, bad=[0]), device="cpu")
    assert isinstance(ds.images, torch.Tensor) and ds.images.dtype == torch.uint8 and ds.images.shape[0] == 4
    assert ds.device == torch.device("cpu") and ds.attributes.device == torch.device("cpu")
    assert CachedImages(split(5)).device is None and isinstance(CachedImages(split(5)).images, np.ndarray)


def test_flips_mirror_whole_images_about_half_the_time() -> None:
    images = np.zeros((200, 4, 4, 3), np.uint8)
    images[:, :, 0] = 255  # the left column white
    ds = CachedImages(CachedSplit(Path("."), images, np.zeros((200, 1), np.uint8), {}), flip=True)
    torch.manual_seed(0)
    x, _ = ds.__getitems__(list(range(200)))
    left = x[:, :, :, 0].mean(dim=(1, 2))  # 1 unflipped, 0 flipped
    right = x[:, :, :, -1].mean(dim=(1, 2))
    assert torch.equal(left + right, torch.ones(200))  # each image is either itself or its mirror image
    assert 70 < (right == 1).sum().item() < 130


def test_settings_are_checked_by_their_declaration() -> None:
    with pytest.raises(ConfigError, match=r"^SyntheticFaces: batch_size=1 must be >= 2 \(batch norm .*\)\.$"):
        SyntheticFaces(batch_size=1)
    with pytest.raises(ConfigError, match=r"^SyntheticFaces: num_workers=-2 must be >= 0\.$"):
        SyntheticFaces(num_workers=-2)
    with pytest.raises(ConfigError, match=r"^SyntheticFaces: image_size=20 must be a multiple of 8"):
        SyntheticFaces(image_size=20)
    SyntheticFaces(n_train=2, batch_size=2, num_workers=0)  # the smallest allowed


def test_split_size_messages_name_the_numbers_and_the_fix() -> None:
    with pytest.raises(ConfigError) as err:
        SyntheticFaces(n_train=15, batch_size=16)
    assert str(err.value) == (
        "the training split has 15 images, fewer than data.batch_size=16: lower "
        "data.batch_size to at most 15 or add images."
    )
    with pytest.raises(ConfigError, match=r"lower data.batch_size to at most 2 or add images"):
        SyntheticFaces(n_train=1, batch_size=16)
    SyntheticFaces(n_train=16, batch_size=16)  # exactly one batch is enough
    with pytest.raises(ConfigError) as err:
        SyntheticFaces(n_train=16, n_val=3, n_test=0, batch_size=16)  # 0 images: refused whatever the distance
    assert str(err.value) == "SyntheticFaces: n_test=0 must be >= 1."
    SyntheticFaces(n_train=16, n_val=3, n_test=3, batch_size=16).check_split_sizes(min_eval_batch=3)
    SyntheticFaces(n_train=16, n_val=1, n_test=1, batch_size=16).check_split_sizes(min_eval_batch=0)
    with pytest.raises(ConfigError, match=r"the val split has 3 image\(s\); at least 4"):
        SyntheticFaces(n_train=16, n_val=3, n_test=9, batch_size=16).check_split_sizes(min_eval_batch=4)


def test_the_base_class_leaves_building_to_the_datasets() -> None:
    from nag.data.datamodule import ImageDataModule

    base = ImageDataModule(cache_dir="~/x")
    assert base.cache_dir == str(Path("~/x").expanduser()) and base.split_size_hint("val") == ""
    for call in (lambda: base.build_split("train"), base.split_sizes):
        with pytest.raises(NotImplementedError):
            call()


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
def test_loaders_are_built_for_training_and_for_evaluation(cache_dir: Path) -> None:
    dm = faces(cache_dir, num_workers=1, pin_memory=True)
    train = dm.train_dataloader()
    assert train.batch_size == 16 and train.drop_last is True  # 40 images: 2 full batches, the 8 left dropped
    assert isinstance(train.sampler, torch.utils.data.RandomSampler)
    assert train.num_workers == 1 and train.persistent_workers is True and train.pin_memory is True
    assert train.collate_fn is keep_batch
    assert [x.shape[0] for x, _ in train] == [16, 16]
    val = dm.val_dataloader()
    assert isinstance(val.batch_sampler, BalancedBatchSampler) and val.batch_sampler.batch_size == 16
    assert isinstance(val.batch_sampler.sampler, torch.utils.data.SequentialSampler)
    assert val.num_workers == 1 and val.persistent_workers is True and val.collate_fn is keep_batch
    test = dm.test_dataloader()
    assert isinstance(test.batch_sampler, BalancedBatchSampler)
    assert torch.equal(torch.cat([x for x, _ in test]), dm.fixed_batch("test", 6)[0])  # every image, in order
    # the validation loader serves the split in order: its first batch is the first fixed batch
    assert torch.equal(next(iter(val))[0], dm.fixed_batch("val", 10)[0])
    plain = faces(cache_dir).train_dataloader()
    assert plain.num_workers == 0 and plain.persistent_workers is False and plain.pin_memory is False


def test_a_training_split_of_exactly_one_batch_keeps_it(cache_dir: Path) -> None:
    dm = faces(cache_dir, n_train=16)
    loader = dm.train_dataloader()
    assert loader.drop_last is False and [x.shape[0] for x, _ in loader] == [16]


def test_on_device_outside_a_trainer_uses_the_cpu_without_workers_or_pinning(cache_dir: Path) -> None:
    dm = faces(cache_dir, on_device=True, num_workers=1, pin_memory=True)
    dm.setup()
    assert {s: ds.device for s, ds in dm.datasets.items()} == dict.fromkeys(
        ("train", "val", "test"), torch.device("cpu")
    )
    loader = dm.train_dataloader()
    assert loader.num_workers == 0 and loader.persistent_workers is False and loader.pin_memory is False
    assert dm.datasets["train"].flip is False
    flipping = faces(cache_dir, flip=True)
    assert [flipping.dataset(s).flip for s in ("train", "val", "test")] == [True, False, False]


def test_each_split_is_built_once_and_setup_keeps_its_datasets(cache_dir: Path) -> None:
    dm = faces(cache_dir)
    dm.prepare_data()
    assert set(dm._caches) == {"train", "val", "test"}
    caches = dict(dm._caches)
    dm.setup("fit")
    train = dm.datasets["train"]
    dm.setup("validate")
    assert dm.datasets["train"] is train and all(dm._caches[s] is caches[s] for s in caches)
    assert len(dm.dataset("val")) == 10 and len(dm.dataset("test")) == 6


def test_fixed_batches_take_the_items_at_the_offset(cache_dir: Path) -> None:
    dm = faces(cache_dir)
    ds = dm.dataset("val")
    x, a = dm.fixed_batch("val", 3, offset=7)
    assert torch.equal(x, torch.stack([ds[i][0] for i in (7, 8, 9)]))
    assert torch.equal(a, torch.stack([ds[i][1] for i in (7, 8, 9)]))
    with pytest.raises(ValueError, match=r"^the val split has 10 images; 11 were asked for a fixed batch\.$"):
        dm.fixed_batch("val", 3, offset=8)


def test_balanced_batches_of_an_empty_split() -> None:
    sampler = BalancedBatchSampler(torch.utils.data.SequentialSampler(range(0)), 4, drop_last=False)
    assert len(sampler) == 0 and list(sampler) == []
    one = BalancedBatchSampler(torch.utils.data.SequentialSampler(range(1)), 4, drop_last=False)
    assert len(one) == 1 and list(one) == [[0]]


def test_an_image_is_centre_cropped_to_its_short_side_and_resized_bicubically(tmp_path: Path) -> None:
    """Known answers from PIL itself: the centre square (the crop, or the short side when the image is smaller),
    then PIL's bicubic resize (what torchvision does to a PIL image); a bilinear resize gives other pixels."""
    from PIL import Image

    from nag.data.images import decode_images, preprocess

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))  # 50 wide, 30 high
    short = preprocess(photo, crop=40, image_size=16)  # the crop is past the short side: 30 x 30
    expected = np.array(photo.crop((10, 0, 40, 30)).resize((16, 16), Image.Resampling.BICUBIC))
    assert short.dtype == np.uint8 and np.array_equal(short, expected)
    bilinear = np.array(photo.crop((10, 0, 40, 30)).resize((16, 16), Image.Resampling.BILINEAR))
    assert not np.array_equal(short, bilinear)
    cropped = preprocess(photo.convert("L"), crop=20, image_size=8)  # grey becomes RGB
    rgb = photo.convert("L").convert("RGB")
    assert np.array_equal(cropped, np.array(rgb.crop((15, 5, 35, 25)).resize((8, 8), Image.Resampling.BICUBIC)))
    photo.save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    items = [(str(tmp_path / "a.png"), np.zeros(0, np.uint8)), (str(tmp_path / "b.png"), np.zeros(0, np.uint8))]
    images, attributes, bad = decode_images(items, crop=40, image_size=16)
    assert np.array_equal(images[0], short) and not images[1].any() and bad == [1] and images.dtype == np.uint8
    assert attributes.shape == (2, 0) and attributes.dtype == np.uint8


def test_an_image_is_read_only_inside_its_roots_and_a_sibling_with_a_longer_name_is_outside(tmp_path: Path) -> None:
    import os

    from PIL import Image

    from nag.data.images import BadImage, open_image

    root = os.path.realpath(tmp_path)
    for folder in ("photos", "photos-2"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (4, 3)).save(tmp_path / folder / "a.png")
    with open_image(str(tmp_path / "photos" / "a.png"), [f"{root}/photos"], 100) as im:
        assert im.size == (4, 3)
    with open_image(str(tmp_path / "photos" / "a.png"), ["/"], 100) as im:  # everything is inside "/"
        assert im.size == (4, 3)
    with pytest.raises(BadImage, match=r"^a link to .*photos-2/a.png, outside the image folder and data.root$"):
        open_image(str(tmp_path / "photos-2" / "a.png"), [f"{root}/photos"], 100)
    with pytest.raises(BadImage, match=r"^4 x 3 px claimed, more than data.max_image_pixels=11$"):
        open_image(str(tmp_path / "photos" / "a.png"), ["/"], 11)
    with open_image(str(tmp_path / "photos" / "a.png"), ["/"], 12) as im:  # exactly the bound: allowed
        assert im.size == (4, 3)
    (tmp_path / "photos" / "b.png").write_bytes(b"not an image at all")
    with pytest.raises(BadImage, match=r"^unreadable \(UnidentifiedImageError\)$"):
        open_image(str(tmp_path / "photos" / "b.png"), ["/"], 100)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_a_white_pixel_is_exactly_one_and_black_exactly_zero(device: str | None) -> None:
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[0] = 255
    x, _ = CachedImages(CachedSplit(Path("."), images, np.zeros((2, 1), np.uint8), {}), device=device).__getitems__(
        [0, 1]
    )
    assert x[0].eq(1.0).all() and x[1].eq(0.0).all()


def test_no_items_decode_to_empty_arrays_of_their_kinds() -> None:
    from nag.data.images import decode_images

    images, attributes, bad = decode_images([], crop=40, image_size=16)
    assert images.shape == (0, 16, 16, 3) and images.dtype == np.uint8
    assert attributes.shape == (0, 0) and bad == []


def test_cached_images_are_not_flipped_unless_asked_and_attributes_are_float32() -> None:
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[:, :, 0] = 255  # a white left column: a flip would move it to the right
    split = CachedSplit(Path("."), images, np.array([[1], [0]], np.uint8), {})
    torch.manual_seed(0)
    x, y = CachedImages(split).__getitems__([0, 1])
    assert x[:, :, :, 0].eq(1.0).all() and x[:, :, :, 3].eq(0.0).all(), "no flip by default"
    assert y.dtype == torch.float32 and y.tolist() == [[1.0], [0.0]]


def test_a_missing_path_is_not_a_real_folder(tmp_path: Path) -> None:
    from nag.io.files import is_real_dir

    assert is_real_dir(tmp_path) and not is_real_dir(tmp_path / "missing")
    (tmp_path / "link").symlink_to(tmp_path)
    assert not is_real_dir(tmp_path / "link")

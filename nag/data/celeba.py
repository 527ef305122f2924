"""CelebA (``data=celeba``): any on-disk layout, official splits, a one-time uint8 cache per split.

The first use of a split decodes every JPEG once (all cores, with a progress bar): RGB conversion, a centre
crop of ``crop`` pixels and an antialiased resize to ``image_size``. Later epochs and runs memory-map the
cache and never touch a JPEG. The cache follows the files: its key holds the size and modification time of
every image and of the partition and attribute files, so a photo replaced under the same name is decoded again.

A dataset folder is untrusted input. Images that cannot be used are skipped and counted — unreadable or
truncated files, files whose header claims more than ``max_image_pixels`` pixels (a "decompression bomb" of a few
KB can claim 12000 × 12000; a CelebA photo is 178 × 218), and links to files outside the image folder and
``data.root`` — and more than ``max_bad_fraction`` of a split aborts with an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Len

from nag.config.errors import UserInputError
from nag.config.params import Count, Fraction, Hint, NotBelow, checked
from nag.data.cache import CachedSplit, load_or_build
from nag.data.celeba_layout import CelebAIndex, CelebANotFoundError, index_celeba, not_found
from nag.data.datamodule import ImageDataModule
from nag.data.images import DECODER_VERSION, MAX_IMAGE_PIXELS, decode_images, fingerprint, why_bad

log = logging.getLogger(__name__)


class CelebADecodeError(UserInputError, RuntimeError):
    """More than ``data.max_bad_fraction`` of a split's images could not be decoded."""


class CelebA(ImageDataModule):
    """CelebA from whichever copy the user has.

    Args:
        root: Folder holding CelebA in a known layout (see :mod:`nag.data.celeba_layout`).
        crop: Side of the centre crop before resizing (148 as in many VAE papers; 140 is the WAE/RAE choice).
        download: Try torchvision's Google Drive download into ``root`` when no copy is found.
        max_bad_fraction: Abort when more than this fraction of a split's images cannot be decoded.
        split_fractions: Train/val/test fractions of the seeded split (used only without official split info).
        split_seed: Seed of that split.
        max_image_pixels: Images whose header claims more pixels are counted bad, not decoded.
        **kwargs: See :class:`~nag.data.datamodule.ImageDataModule` (``image_size``, ``batch_size``, ``flip``...).
    """

    @checked
    def __init__(
        self,
        root: str = "data",
        crop: Annotated[int, Ge(1), NotBelow("image_size", "the crop would be upscaled")] = 148,
        download: bool = False,
        max_bad_fraction: Fraction = 0.001,
        split_fractions: Annotated[Sequence[float], Len(3, 3), Gt(0), Hint("train, val, test")] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        max_image_pixels: Count = MAX_IMAGE_PIXELS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(str(root)).expanduser()
        self.crop, self.download = crop, download
        self.max_bad_fraction = max_bad_fraction
        self.split_fractions, self.split_seed = tuple(split_fractions), split_seed
        self.max_image_pixels = max_image_pixels
        self._index: CelebAIndex | None = None

    @property
    def index(self) -> CelebAIndex:
        """The layout, splits and attributes found under ``root`` (read once)."""
        if self._index is None:
            try:
                self._index = index_celeba(self.root, self.split_fractions, self.split_seed)
            except CelebANotFoundError:
                if not self.download:
                    raise
                download_celeba(self.root)
                self._index = index_celeba(self.root, self.split_fractions, self.split_seed)
            ix = self._index
            sizes = {s: len(f) for s, f in ix.files.items()}
            log.info(
                "CelebA: %s layout in %s, splits %s from the %s",
                ix.layout.kind,
                ix.layout.image_dir,
                sizes,
                ix.split_source,
            )
            for note in ix.notes:
                log.warning("CelebA: %s", note)
            self.attribute_names = ix.attribute_names
        return self._index

    def split_sizes(self) -> dict[str, int]:
        return {split: len(files) for split, files in self.index.files.items()}

    def split_size_hint(self, split: str) -> str:
        ix = self.index
        if ix.split_source == "seeded split":
            return (
                f"{sum(self.split_sizes().values())} images under data.root={self.root} are split by "
                f"data.split_fractions={list(self.split_fractions)}: give the {split} split a larger fraction, "
                "or add images."
            )
        return f"The {split} split comes from the {ix.split_source} under data.root={self.root}."

    def build_split(self, split: str) -> CachedSplit:
        ix = self.index
        files = ix.files[split]
        settings = {
            "dataset": "celeba",
            "decoder": DECODER_VERSION,
            "layout": ix.layout.kind,
            "image_dir": str(ix.layout.image_dir.resolve()),
            "split": split,
            "crop": self.crop,
            "image_size": self.image_size,
            "split_source": ix.split_source,
            "files": hashlib.sha256("\n".join(files).encode()).hexdigest(),
            "attributes": list(ix.attribute_names),
            "contents": fingerprint(ix.layout.image_dir, files, (ix.layout.partition_file, ix.layout.attr_file)),
            "max_image_pixels": self.max_image_pixels,
        }
        items = [(str(ix.layout.image_dir / f), a) for f, a in zip(files, ix.attributes[split], strict=True)]
        roots = self._roots()
        build = partial(
            load_or_build,
            self.cache_dir,
            f"celeba-{split}",
            settings,
            items=items,
            image_size=self.image_size,
            n_attributes=len(ix.attribute_names),
            fill=partial(
                decode_images, crop=self.crop, image_size=self.image_size, roots=roots, max_pixels=self.max_image_pixels
            ),
            extra_meta={"attribute_names": list(ix.attribute_names)},
        )
        cached = build()
        # The cache remembers which files could not be decoded; a user who repaired them gets them back.
        repaired = [
            items[i][0] for i in cached.meta["bad_indices"] if not why_bad(items[i][0], roots, self.max_image_pixels)
        ]
        if repaired:
            log.warning(
                "CelebA %s: %d image(s) unreadable when the cache was built now decode (first: %s); "
                "rebuilding the cache",
                split,
                len(repaired),
                repaired[0],
            )
            cached = build(rebuild=True)
        self._check_bad(split, files, cached.meta["bad_indices"])
        return cached

    def _roots(self) -> tuple[str, ...]:
        """Where an image's real path may lie: the image folder and data.root (each with its links resolved)."""
        return tuple(dict.fromkeys(os.path.realpath(p) for p in (self.index.layout.image_dir, self.root)))

    def _check_bad(self, split: str, files: list[str], bad: list[int]) -> None:
        if not bad:
            return
        folder, roots = self.index.layout.image_dir, self._roots()
        reasons = [why_bad(str(folder / files[i]), roots, self.max_image_pixels) or "unreadable" for i in bad[:5]]
        first = ", ".join(f"{folder / files[i]} ({why})" for i, why in zip(bad[:5], reasons, strict=True))
        fraction = len(bad) / len(files)
        if fraction > self.max_bad_fraction:
            raise CelebADecodeError(
                f"{len(bad)} of {len(files)} CelebA {split} images ({fraction:.1%}) could not be decoded, more than "
                f"data.max_bad_fraction={self.max_bad_fraction}. First: {first}. Re-extract the archive, or raise "
                "data.max_bad_fraction to train on the rest."
            )
        log.warning("CelebA %s: skipped %d unreadable image(s) of %d; first: %s", split, len(bad), len(files), first)


def download_celeba(root: Path) -> None:
    """torchvision's CelebA download into ``root/celeba``; on failure, say why and what to do instead."""
    from torchvision.datasets import CelebA as TorchvisionCelebA

    log.info("CelebA: trying torchvision's download into %s (about 1.4 GB from Google Drive)", root / "celeba")
    try:
        TorchvisionCelebA(str(root), split="all", download=True)
    except Exception as e:  # gdown missing, Drive quota page, checksum mismatch, no network...
        raise not_found(
            root,
            f"data.download=true: torchvision's CelebA download failed ({type(e).__name__}: {e}). Google Drive "
            "often refuses it once the file's daily quota is used up (the 'zip' saved is then an HTML quota page, "
            "and the checksum fails). Download it by hand instead. ",
        ) from e

"""The embedded synthetic-faces dataset (``data=synthetic``): offline, deterministic, CelebA-like.

Each split is rendered once into a uint8 cache keyed by its settings (see :mod:`nag.data.cache`); face
``i`` of split ``s`` depends only on ``(seed, s, i)``, so changing a split's size never changes the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from nag.config.params import SplitSize, checked
from nag.data.cache import CachedSplit, load_or_build
from nag.data.datamodule import SPLITS, ImageDataModule
from nag.data.faces import ATTRIBUTE_NAMES, attributes, render, sample_params

# Bump when the renderer's pixels change, so existing caches are not served for the new look.
RENDERER_VERSION = 1


def render_faces(
    indices: Sequence[int], seed: int, split: int, image_size: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Cache fill function: images and attributes of the given face indices (none is ever unusable)."""
    params = [sample_params(seed, split, i) for i in indices]
    return render(params, image_size), np.stack([attributes(p) for p in params]), []


class SyntheticFaces(ImageDataModule):
    """Procedurally rendered faces with CelebA-style binary attributes.

    Args:
        n_train, n_val, n_test: Split sizes.
        seed: Seed of the face generator (not of training).
        **kwargs: See :class:`~nag.data.datamodule.ImageDataModule`.
    """

    attribute_names = ATTRIBUTE_NAMES

    @checked
    def __init__(
        self,
        n_train: SplitSize = 20000,
        n_val: SplitSize = 1000,
        n_test: SplitSize = 1000,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.seed = seed
        self.check_split_sizes()

    def split_sizes(self) -> dict[str, int]:
        return dict(self.sizes)

    def split_size_hint(self, split: str) -> str:
        return f"Raise data.n_{split}."

    def build_split(self, split: str) -> CachedSplit:
        split_id = SPLITS.index(split)
        settings = {
            "dataset": "synthetic",
            "renderer": RENDERER_VERSION,
            "seed": self.seed,
            "split": split,
            "n": self.sizes[split],
            "image_size": self.image_size,
        }
        return load_or_build(
            self.cache_dir,
            f"synthetic-{split}",
            settings,
            items=range(self.sizes[split]),
            image_size=self.image_size,
            n_attributes=len(ATTRIBUTE_NAMES),
            fill=partial(render_faces, seed=self.seed, split=split_id, image_size=self.image_size),
            extra_meta={"attribute_names": list(ATTRIBUTE_NAMES)},
        )

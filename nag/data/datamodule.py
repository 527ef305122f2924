"""Serving cached uint8 splits as float tensors: the part every dataset shares.

A dataset module only says how to build each split's cache (``build_split``); this base class turns the
caches into ``(image (3, H, W) float in [0, 1], attributes (A,) float)`` items and Lightning data loaders.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Annotated

import lightning as L
import numpy as np
import torch
from annotated_types import Ge, MultipleOf
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset

from nag.config.errors import ConfigError
from nag.config.params import Hint, NonNegativeInt, checked
from nag.data.cache import CachedSplit

SPLITS: tuple[str, ...] = ("train", "val", "test")


class CachedImages(Dataset):
    """Items of a cached split, skipping the images that were unusable when the cache was built.

    ``ds[i]`` is one ``(image (3, H, W), attributes (A,))`` pair. The data module's loaders fetch whole batches
    at once through ``__getitems__`` (one fancy-indexed read of the memory map and one conversion per batch,
    instead of per image), with :func:`keep_batch` as their ``collate_fn``.

    With a ``device`` the usable images are copied there once, as uint8 (CelebA at 64 px: 2.4 GB), and every
    batch is gathered, converted and flipped on that device: no host-to-device copy per batch, no worker
    processes. The flips are drawn from the same CPU random stream either way, so both paths give the same
    batches.

    Args:
        split: The cache.
        flip: Random horizontal flip (training augmentation).
        device: Where to keep the images (``None``: read them from the memory-mapped cache per batch).
    """

    def __init__(self, split: CachedSplit, flip: bool = False, device: torch.device | str | None = None) -> None:
        self.attributes = torch.from_numpy(split.attributes.astype(np.float32))  # (N, A)
        bad = np.asarray(split.meta.get("bad_indices", []), dtype=np.int64)
        self.index = np.setdiff1d(np.arange(split.images.shape[0]), bad)
        self.flip = flip
        self.device = torch.device(device) if device is not None else None
        if self.device is None:
            self.images = split.images  # (N, H, W, 3) uint8, memory-mapped
        else:
            # Only the usable rows, so a batch's indices address the tensors directly.
            self.images = torch.from_numpy(np.ascontiguousarray(split.images[self.index])).to(self.device)
            self.attributes = self.attributes[torch.from_numpy(self.index)].to(self.device)

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        if self.device is None:
            j = self.index[np.asarray(indices, dtype=np.int64)]  # (B,) rows of the cache
            x = torch.from_numpy(self.images[j]).permute(0, 3, 1, 2).float().div_(255)  # (B, 3, H, W)
        else:
            j = torch.as_tensor(indices, dtype=torch.long).to(self.device, non_blocking=True)  # (B,)
            x = self.images[j].permute(0, 3, 1, 2).float().div_(255)  # (B, 3, H, W) on the device
        if self.flip:
            flip = (torch.rand(len(j)) < 0.5).to(x.device)  # (B,) drawn on the CPU: the same flips on any device
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x, self.attributes[j]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x, a = self.__getitems__([i])
        return x[0], a[0]


class BalancedBatchSampler(BatchSampler):
    """Evaluation batches of near-equal size (they differ by at most one) instead of full batches plus a remainder.

    65 images at batch size 64 become batches of 33 and 32, not 64 and 1: every image is used and, whenever there
    are two images or more, no batch holds fewer than two, so a matching distance needing pairs (the unbiased MMD)
    is defined on every batch (at batch sizes 2 and 3 a batch may exceed the batch size by one to ensure that).
    The constructor is ``BatchSampler``'s, so Lightning can re-create it around a distributed sampler.
    """

    def _n_batches(self, n: int) -> int:
        return max(1, min(math.ceil(n / self.batch_size), n // 2))

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(self.sampler)
        if not indices:
            return
        for chunk in np.array_split(np.asarray(indices), self._n_batches(len(indices))):
            yield chunk.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return self._n_batches(n) if n else 0


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``collate_fn`` for loaders over :class:`CachedImages`: ``__getitems__`` already built the batch."""
    return batch


class ImageDataModule(L.LightningDataModule):
    """Base data module over cached splits.

    Args:
        image_size: Side of the square images served.
        batch_size: Batch size of every loader.
        num_workers: Loader worker processes (0 reads in the main process, enough for cached uint8 arrays).
        cache_dir: Where split caches live.
        flip: Random horizontal flips on the training split only.
        pin_memory: Pin host memory (useful on GPU).
        on_device: Keep every split on the accelerator the Trainer uses, as uint8, and build batches there
            (:class:`CachedImages`); ``num_workers`` and ``pin_memory`` are then unused. Needs the splits to fit in
            its memory (CelebA at 64 px: 2.4 GB).
    """

    attribute_names: tuple[str, ...] = ()

    @checked
    def __init__(
        self,
        image_size: Annotated[int, Ge(8), MultipleOf(8), Hint("the nets halve it three times")] = 64,
        batch_size: Annotated[int, Ge(2), Hint("batch norm and the matching distances need two images")] = 64,
        num_workers: NonNegativeInt = 0,
        cache_dir: str = "~/.cache/nag",
        flip: bool = False,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__()
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.cache_dir = os.path.expanduser(str(cache_dir))
        self.flip, self.pin_memory, self.on_device = flip, pin_memory, on_device
        self.datasets: dict[str, CachedImages] = {}
        self._caches: dict[str, CachedSplit] = {}

    def build_split(self, split: str) -> CachedSplit:
        """Return the cache of ``split`` ('train', 'val' or 'test'), building it if it does not exist."""
        raise NotImplementedError

    def split_sizes(self) -> dict[str, int]:
        """Images in each split, known before any image is decoded or rendered."""
        raise NotImplementedError

    def check_split_sizes(self, min_eval_batch: int = 1) -> None:
        """Refuse, before any decoding, splits too small to train or evaluate on.

        Args:
            min_eval_batch: The fewest images a validation/test batch may hold (the matching distance's
                ``min_batch``).
        """
        sizes = self.split_sizes()
        if sizes["train"] < self.batch_size:
            raise ConfigError(
                f"the training split has {sizes['train']} images, fewer than data.batch_size={self.batch_size}: "
                f"lower data.batch_size to at most {max(sizes['train'], 2)} or add images."
            )
        for split in ("val", "test"):
            if sizes[split] < max(1, min_eval_batch):
                raise ConfigError(
                    f"the {split} split has {sizes[split]} image(s); at least {max(1, min_eval_batch)} are needed "
                    f"(the matching distance compares pairs of codes). {self.split_size_hint(split)}"
                )

    def split_size_hint(self, split: str) -> str:
        """How to make ``split`` larger (the config key to change)."""
        return ""

    def split_cache(self, split: str) -> CachedSplit:
        """``build_split`` once per split and module (prepare_data and setup share the result)."""
        if split not in self._caches:
            self._caches[split] = self.build_split(split)
        return self._caches[split]

    def prepare_data(self) -> None:
        for split in SPLITS:
            self.split_cache(split)

    def setup(self, stage: str | None = None) -> None:
        device = None
        if self.on_device:  # the Trainer's device (this process's GPU under DDP); the CPU outside a Trainer
            trainer = getattr(self, "trainer", None)
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = CachedImages(
                    self.split_cache(split), flip=self.flip and split == "train", device=device
                )

    def dataset(self, split: str) -> CachedImages:
        self.setup()
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        workers = 0 if ds.device is not None else self.num_workers  # on the device: built in this process
        common = {
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "pin_memory": self.pin_memory and ds.device is None,
            "collate_fn": keep_batch,
        }
        if shuffle:
            # Full training batches only: a last batch of 1 breaks batch norm and the unbiased MMD.
            return DataLoader(
                ds, batch_size=self.batch_size, shuffle=True, drop_last=len(ds) > self.batch_size, **common
            )
        # Evaluation uses every image, in batches of near-equal size.
        sampler = BalancedBatchSampler(torch.utils.data.SequentialSampler(ds), self.batch_size, drop_last=False)
        return DataLoader(ds, batch_sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def fixed_batch(self, split: str, n: int, offset: int = 0) -> tuple[Tensor, Tensor]:
        """The same ``n`` items every call (indices ``offset .. offset+n-1``): inputs for comparable figures."""
        ds = self.dataset(split)
        if offset + n > len(ds):
            raise ValueError(f"the {split} split has {len(ds)} images; {offset + n} were asked for a fixed batch.")
        items = [ds[i] for i in range(offset, offset + n)]
        return torch.stack([x for x, _ in items]), torch.stack([a for _, a in items])

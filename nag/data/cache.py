"""One-time uint8 caches of decoded/rendered image splits, shared by every dataset.

A cache is a directory ``<cache_dir>/<name>-<key>/`` holding ``images.npy`` (N, H, W, 3) uint8,
``attributes.npy`` (N, A) uint8 and ``meta.json``. It is built in a temporary sibling directory and renamed
into place only when complete, so an interrupted build never leaves a directory that is later trusted
(a rename within one file system is atomic). The key is a hash of every setting that changes the pixels,
so changing e.g. the crop or the size builds a new cache instead of serving stale images.

A cache is read back as untrusted input: its files must be regular files (not links), its ``meta.json`` must
describe exactly the settings asked for, with a sane count and in-range ``bad_indices``, and the arrays must have
the shapes those settings give; anything else is a damaged cache, rebuilt with a warning. The decode workers of
a build exit when the process that started them dies (``kill -9`` included), instead of living on.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nag.config.errors import UserInputError
from nag.io.files import UnsafeFileError, is_real_dir, is_regular_file, load_json
from nag.io.output import write_json_atomic

log = logging.getLogger(__name__)

# Bump when the on-disk format changes, so old caches are rebuilt rather than misread.
CACHE_FORMAT = 1

# fill(items) -> (images (n, H, W, 3) uint8, attributes (n, A) uint8, positions of unusable images among the
# items). It receives one chunk of the work items (e.g. indices or file paths) at a time and runs in worker
# processes, so it must be picklable (a module-level function or a partial of one) and its items small.
FillFn = Callable[[Sequence[Any]], tuple[np.ndarray, np.ndarray, list[int]]]


def cache_key(settings: dict[str, Any]) -> str:
    """Short stable hash of the settings that determine a cache's contents."""
    blob = json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class CachedSplit:
    """A built cache: memory-mapped images and attributes plus its metadata."""

    path: Path
    images: np.ndarray  # (N, H, W, 3) uint8, memory-mapped
    attributes: np.ndarray  # (N, A) uint8
    meta: dict[str, Any]


class CacheDamagedError(RuntimeError):
    """A cache directory whose files are missing, truncated or inconsistent (it is rebuilt)."""


def _normalised(settings: dict[str, Any]) -> Any:
    """Settings as they read back from ``meta.json`` (tuples become lists, keys strings)."""
    return json.loads(json.dumps(settings, default=str))


def open_cache(
    path: Path, settings: dict[str, Any] | None = None, image_size: int | None = None, n_attributes: int | None = None
) -> CachedSplit:
    """Open a built cache; :class:`CacheDamagedError` when any file is missing, a link, truncated or disagrees
    with its ``meta.json``, or ``meta.json`` with the ``settings``, ``image_size`` and ``n_attributes`` asked for."""
    if not is_real_dir(path):
        raise CacheDamagedError("the cache folder is a link or not a folder")
    for name in ("meta.json", "images.npy", "attributes.npy"):
        if not is_regular_file(path / name):
            raise CacheDamagedError(f"{name} is missing, a link or not a regular file")
    try:
        meta = load_json(path / "meta.json")
        images = np.load(path / "images.npy", mmap_mode="r")
        attributes = np.load(path / "attributes.npy")
    except (OSError, ValueError, EOFError, UnsafeFileError) as e:
        raise CacheDamagedError(f"{type(e).__name__}: {e}") from None
    if not isinstance(meta, dict):
        raise CacheDamagedError("meta.json is not a mapping")
    n, bad = meta.get("n"), meta.get("bad_indices")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CacheDamagedError(f"meta.json has n={n!r}")
    if (
        not isinstance(bad, list)
        or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in bad)
        or len(set(bad)) != len(bad)
    ):
        raise CacheDamagedError("meta.json's bad_indices are missing, repeated or out of range")
    if settings is not None and meta.get("settings") != _normalised(settings):
        raise CacheDamagedError("meta.json describes other settings than its name says")
    if (
        images.shape[0] != n
        or attributes.shape[0] != n
        or images.dtype != np.uint8
        or images.ndim != 4
        or attributes.dtype != np.uint8
        or attributes.ndim != 2
    ):
        raise CacheDamagedError(
            f"images {images.shape} / attributes {attributes.shape} disagree with meta.json (n={n})"
        )
    if image_size is not None and images.shape[1:] != (image_size, image_size, 3):
        raise CacheDamagedError(f"images of shape {images.shape[1:]}, not {image_size} x {image_size} x 3")
    if n_attributes is not None and attributes.shape[1] != n_attributes:
        raise CacheDamagedError(f"{attributes.shape[1]} attribute columns, not {n_attributes}")
    return CachedSplit(path, images, attributes, meta)


def _unwritable(root: Path, e: OSError) -> UserInputError:
    return UserInputError(
        f"cannot write the dataset cache in {root} ({e.strerror or e}). Set data.cache_dir (paths.cache_dir) "
        "or the NAG_CACHE_DIR environment variable to a writable folder."
    )


#: Room a cache leaves free on its disk (a full disk breaks every other program, the run's checkpoints included).
DISK_MARGIN = 1 << 30


def _check_room(root: Path, name: str, n: int, image_size: int, n_attributes: int) -> None:
    """Refuse, before anything is written, a cache that would not fit on its disk with :data:`DISK_MARGIN` to
    spare: its size follows from the split size (``data.n_*``), which a stored config may claim to be anything."""
    need = n * (image_size * image_size * 3 + n_attributes)
    free = shutil.disk_usage(root).free
    if need + DISK_MARGIN > free:
        raise UserInputError(
            f"the {name} dataset cache would take {need / 1e9:,.1f} GB ({n:,} images of {image_size} px) but "
            f"{root} has {free / 1e9:,.1f} GB free (keeping {DISK_MARGIN / 1e9:.0f} GB spare). Lower the split "
            "size (data.n_train, data.n_val, data.n_test) or give data.cache_dir on a larger disk."
        )


def load_or_build(
    cache_dir: str | os.PathLike,
    name: str,
    settings: dict[str, Any],
    items: Sequence[Any],
    image_size: int,
    n_attributes: int,
    fill: FillFn,
    chunk_size: int = 256,
    workers: int | None = None,
    extra_meta: dict[str, Any] | None = None,
    rebuild: bool = False,
) -> CachedSplit:
    """Return the cache for ``settings``, building it first if it does not exist or is damaged.

    Args:
        cache_dir: Parent directory of all caches.
        name: Human-readable prefix of the cache directory (e.g. ``synthetic-train``).
        settings: Everything that determines the pixels; hashed into the directory name.
        items: One work item per image (an index, a path, ...), handed to ``fill`` in chunks.
        image_size: Side of the (square) images.
        n_attributes: Width of the attribute array (0 for none).
        fill: Produces the images and attributes of a chunk of items (runs in worker processes).
        chunk_size: Items per ``fill`` call.
        workers: Worker processes; default all cores. 1 builds in this process.
        extra_meta: Stored in ``meta.json`` next to the settings (e.g. attribute names).
        rebuild: Build afresh even if a cache exists (it is replaced atomically once the new one is complete).
    """
    root = Path(cache_dir).expanduser()
    final = root / f"{name}-{cache_key(settings)}"
    if os.path.lexists(final) and not rebuild:
        try:
            return open_cache(final, settings, image_size, n_attributes)
        except CacheDamagedError as e:
            log.warning("cache %s is damaged (%s); rebuilding it", final, e)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _check_room(root, name, len(items), image_size, n_attributes)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
    except OSError as e:
        raise _unwritable(root, e) from None
    try:
        n = len(items)
        bad = _build(tmp, items, image_size, n_attributes, fill, chunk_size, workers, desc=f"caching {name}")
        meta = {"n": n, "settings": settings, "bad_indices": bad, "format": CACHE_FORMAT, **(extra_meta or {})}
        write_json_atomic(tmp / "meta.json", _normalised(meta))
        _move_into_place(tmp, final)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT):
            raise _unwritable(root, e) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached %d images in %s", len(items), final)
    return open_cache(final, settings, image_size, n_attributes)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` onto ``final``; an existing (damaged or stale) ``final`` is moved aside first.

    Every state in between is safe: a missing ``final`` is rebuilt by the next run, a leftover aside directory
    is only ever deleted.
    """
    if os.path.lexists(final):
        aside = final.with_name(f".{final.name}.{os.getpid()}.old")
        os.rename(final, aside)  # a link is renamed itself, never what it points to
        if os.path.islink(aside):
            aside.unlink()
        else:
            shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        # Another process finished the same cache first: keep theirs.
        if not (final / "meta.json").exists():
            raise
        log.info("cache %s was built concurrently by another process; using it", final)


def _build(
    tmp: Path,
    items: Sequence[Any],
    image_size: int,
    n_attributes: int,
    fill: FillFn,
    chunk_size: int,
    workers: int | None,
    desc: str,
) -> list[int]:
    n = len(items)
    images = np.lib.format.open_memmap(
        tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, image_size, image_size, 3)
    )
    attributes = np.zeros((n, n_attributes), dtype=np.uint8)
    starts = range(0, n, chunk_size)
    chunks = [list(items[i : i + chunk_size]) for i in starts]
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    bad: list[int] = []
    pool = ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) if workers > 1 else None
    try:
        results = pool.map(fill, chunks) if pool else map(fill, chunks)
        with tqdm(total=n, desc=desc, unit="img", disable=None) as bar:
            for start, (img, att, bad_local) in zip(starts, results, strict=True):
                images[start : start + len(img)], attributes[start : start + len(img)] = img, att
                bad += [start + j for j in bad_local]
                bar.update(len(img))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    images.flush()
    del images
    np.save(tmp / "attributes.npy", attributes)
    return bad


def die_with_parent(parent: int) -> None:
    """Worker initializer: exit when ``parent`` dies. A worker blocked on its task queue never notices a parent
    killed by ``kill -9`` (and each holds hundreds of MB while decoding): Linux's ``PR_SET_PDEATHSIG`` kills it
    with its parent, and a watchdog thread polling the parent's id covers the other systems."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="nag-die-with-parent").start()

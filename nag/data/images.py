"""Decoding image files that may come from anyone: a size cap read from the header, links that lead outside the
dataset refused, the same preprocessing for every file, and a fingerprint of the files a cache was built from.

A "decompression bomb" of a few KB can claim 12000 × 12000 pixels in its header (it passes PIL's own bomb check
and costs a GB in each decode worker); a link can point at any file of the user. Both are counted as bad images
with the reason, never decoded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

# Bump when the decoding/preprocessing changes the pixels, so existing caches are rebuilt.
DECODER_VERSION = 1
#: Default cap on one image's pixels (``data.max_image_pixels``): 16 MP, 400 times a CelebA photo.
MAX_IMAGE_PIXELS = 4096 * 4096


def preprocess(image: Image.Image, crop: int, image_size: int) -> np.ndarray:
    """RGB, centre crop (at most the short side, so small or odd-sized images work), antialiased resize."""
    image = image.convert("RGB")
    side = min(crop, *image.size)
    image = TF.center_crop(image, [side, side])
    image = TF.resize(image, [image_size, image_size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return np.array(image, dtype=np.uint8)


class BadImage(Exception):
    """An image file nag will not decode (the message says why)."""


def open_image(path: str, roots: Sequence[str], max_pixels: int) -> Image.Image:
    """Open an image for decoding, refusing a link that leads outside ``roots`` (real paths) and a header that
    claims more than ``max_pixels`` pixels, before any pixel is decoded.

    Raises:
        BadImage: Why the file is not used.
    """
    real = os.path.realpath(path)
    if not any(real == r or real.startswith(os.path.join(r, "")) for r in roots):  # join: "/" stays "/"
        raise BadImage(f"a link to {real}, outside the image folder and data.root")
    try:
        im = Image.open(path)  # reads the header only
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImage(f"unreadable ({type(e).__name__})") from None
    if im.width * im.height > max_pixels:
        im.close()
        raise BadImage(f"{im.width} x {im.height} px claimed, more than data.max_image_pixels={max_pixels:,}")
    return im


def why_bad(path: str, roots: Sequence[str], max_pixels: int) -> str:
    """Why ``path`` is not decoded ('' if it decodes completely now)."""
    try:
        with open_image(path, roots, max_pixels) as im:
            im.load()
        return ""
    except BadImage as e:
        return str(e)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"unreadable or truncated ({type(e).__name__})"


def decode_images(
    items: Sequence[tuple[str, np.ndarray]],
    crop: int,
    image_size: int,
    roots: Sequence[str] = ("/",),
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Cache fill function: decode ``(path, attributes)`` items; unusable files are reported, not raised."""
    images = np.zeros((len(items), image_size, image_size, 3), dtype=np.uint8)
    bad: list[int] = []
    for j, (path, _) in enumerate(items):
        try:
            with open_image(path, roots, max_pixels) as im:
                images[j] = preprocess(im, crop, image_size)
        except (BadImage, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            bad.append(j)  # unusable: counted and skipped by the caller
    n_attr = len(items[0][1]) if items else 0
    attributes = np.stack([a for _, a in items]) if n_attr else np.zeros((len(items), 0), np.uint8)
    return images, attributes, bad


def fingerprint(folder: Path, names: Sequence[str], extra: Sequence[Path | None] = ()) -> str:
    """A hash of the name, size and modification time of every image (and of the metadata files), so a cache
    built from other contents under the same names is never served. Costs one ``stat`` per file."""
    h = hashlib.sha256()
    for name in names:
        try:
            st = os.stat(folder / name)
            h.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{name}\t-\n".encode())
    for path in extra:
        if path is not None:
            st = os.stat(path)
            h.update(f"{path.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()

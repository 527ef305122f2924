"""Finding CelebA on disk and reading its metadata, whichever way the user got it.

Three layouts are detected under ``data.root``:

- ``torchvision``: ``<root>/celeba/img_align_celeba/*.jpg`` with ``list_eval_partition.txt`` and
  ``list_attr_celeba.txt`` beside the image folder (also accepted one level up: ``<root>/img_align_celeba``);
- ``kaggle``: ``<root>/img_align_celeba/img_align_celeba/*.jpg`` (the doubled folder) with
  ``list_eval_partition.csv`` and ``list_attr_celeba.csv`` (comma-separated, header row) in ``<root>``;
- ``folder``: face images directly in ``<root>``, no metadata.

Splits: the official partition file when present; otherwise, when every file has an official name
(``000001.jpg`` … ``202599.jpg``), the official index ranges; otherwise a seeded random split.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nag.config.errors import MissingFileError
from nag.data.celeba_metadata import CelebAMetadataError, read_attributes, read_partition

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Last image index (1-based, inclusive) of the official train / valid / test partitions.
OFFICIAL_ENDS = (162_770, 182_637, 202_599)
OFFICIAL_NAME = re.compile(r"^(\d{6})\.jpg$")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


class CelebANotFoundError(MissingFileError):
    """No CelebA in any known layout under the root."""


@dataclass
class Layout:
    """Where one copy of CelebA lives and which metadata files it has."""

    kind: str  # "torchvision" | "kaggle" | "folder"
    image_dir: Path
    partition_file: Path | None = None
    attr_file: Path | None = None


@dataclass
class CelebAIndex:
    """The files of each split and their attributes."""

    layout: Layout
    files: dict[str, list[str]]  # split -> file names (relative to layout.image_dir)
    attributes: dict[str, np.ndarray]  # split -> (n, A) uint8
    attribute_names: tuple[str, ...] = ()
    split_source: str = ""  # "partition file" | "official ranges" | "seeded split"
    notes: list[str] = field(default_factory=list)


def _images_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def not_found(root: Path, first: str = "") -> CelebANotFoundError:
    """The error for no CelebA under ``root``: every place searched and every way to get it, one per line
    (``first``: what went wrong before, e.g. a failed download)."""
    r = str(root)
    return CelebANotFoundError(
        f"{first}No CelebA found under data.root={r} (resolved to {root.resolve()}). Looked for:",
        details=[
            f"- the torchvision layout: {r}/celeba/img_align_celeba/*.jpg with list_eval_partition.txt and "
            f"list_attr_celeba.txt in {r}/celeba (or {r}/img_align_celeba/*.jpg with the files in {r})",
            f"- the Kaggle layout: {r}/img_align_celeba/img_align_celeba/*.jpg with list_eval_partition.csv and "
            f"list_attr_celeba.csv in {r}",
            f"- a plain folder of face images (*.jpg, *.png) directly in {r}",
            "Get CelebA with one of:",
            "- data.download=true: torchvision's Google Drive download (needs `pip install gdown`; Drive's daily "
            "quota often makes it fail)",
            f"- Kaggle: `kaggle datasets download -d jessicali9530/celeba-dataset`, then unzip the archive into {r}",
            "- the CelebA project page (mmlab.ie.cuhk.edu.hk/projects/CelebA.html): 'Align&Cropped Images' "
            f"(img_align_celeba.zip) and the Anno/Eval files, unzipped into {r}/celeba",
            "Point data.root (or $NAG_DATA_DIR) at the folder, or train offline on the embedded faces with "
            "data=synthetic.",
        ],
    )


def detect_layout(root: str | Path) -> Layout:
    """Find CelebA under ``root`` in one of the known layouts; raise with every place searched otherwise."""
    root = Path(root).expanduser()
    for base in (root / "celeba", root):
        folder = base / "img_align_celeba"
        if folder.is_dir() and _images_in(folder):
            return Layout(
                "torchvision",
                folder,
                _existing(base / "list_eval_partition.txt"),
                _existing(base / "list_attr_celeba.txt"),
            )
    for base in (root, root / "celeba"):
        folder = base / "img_align_celeba" / "img_align_celeba"
        if folder.is_dir() and _images_in(folder):
            return Layout(
                "kaggle",
                folder,
                _existing(base / "list_eval_partition.csv"),
                _existing(base / "list_attr_celeba.csv"),
            )
    if root.is_dir() and _images_in(root):
        return Layout("folder", root)
    raise not_found(root)


def _check_agreement(
    partition_file: Path, listed: dict[str, tuple[int, int]], on_disk: Sequence[str], image_dir: Path
) -> None:
    disk = set(on_disk)
    missing = [(line, name) for name, (_, line) in listed.items() if name not in disk]
    if missing:
        line, name = min(missing)
        raise CelebAMetadataError(
            f"{partition_file}, line {line}: lists {name}, which is not in {image_dir} "
            f"({len(missing)} listed images are missing). Is the image folder complete, or the file from another copy?"
        )
    extra = sorted(disk - listed.keys())
    if extra:
        raise CelebAMetadataError(
            f"{partition_file} does not list {len(extra)} image(s) found in {image_dir}, e.g. {extra[:3]}. "
            "Remove the extra files or use a partition file that matches this copy."
        )


def _official_split(name: str) -> int:
    """Split id of an official file name by its number (names past the last official one count as test)."""
    number = int(OFFICIAL_NAME.match(name).group(1))  # type: ignore[union-attr]
    return min(bisect_left(OFFICIAL_ENDS, number), 2)


def index_celeba(
    root: str | Path, split_fractions: Sequence[float] = (0.8, 0.1, 0.1), split_seed: int = 0
) -> CelebAIndex:
    """Detect the layout under ``root``, read its metadata, check it against the images, assign splits.

    ``split_fractions`` (three positive numbers) and ``split_seed`` are used only for the seeded split."""
    layout = detect_layout(root)
    on_disk = _images_in(layout.image_dir)
    notes: list[str] = []
    if layout.partition_file is not None:
        listed = read_partition(layout.partition_file)
        _check_agreement(layout.partition_file, listed, on_disk, layout.image_dir)
        split_of = {name: split for name, (split, _) in listed.items()}
        source = "partition file"
    elif all(OFFICIAL_NAME.match(n) for n in on_disk):
        split_of = {n: _official_split(n) for n in on_disk}
        source = "official ranges"
        if layout.kind != "folder":
            notes.append("no partition file: official index ranges used for the split")
    else:
        p = np.asarray(split_fractions, dtype=float) / sum(split_fractions)
        order = np.random.default_rng(split_seed).permutation(len(on_disk))
        bounds = np.round(np.cumsum(p) * len(on_disk)).astype(int)
        split_of = {on_disk[i]: int(np.searchsorted(bounds, rank, side="right")) for rank, i in enumerate(order)}
        source = "seeded split"
    names: tuple[str, ...] = ()
    attr_rows: dict[str, np.ndarray] = {}
    if layout.attr_file is not None:
        names, attr_rows = read_attributes(layout.attr_file)
        lacking = [n for n in on_disk if n not in attr_rows]
        if lacking:
            raise CelebAMetadataError(
                f"{layout.attr_file} has no row for {len(lacking)} image(s) in {layout.image_dir}, e.g. {lacking[:3]}."
            )
    elif layout.kind != "folder":
        notes.append("no attribute file: images are served without attributes")
    files = {s: sorted(n for n, k in split_of.items() if k == i) for s, i in SPLIT_IDS.items()}
    attributes = {
        s: np.stack([attr_rows[n] for n in fs]) if names and fs else np.zeros((len(fs), len(names)), np.uint8)
        for s, fs in files.items()
    }
    return CelebAIndex(layout, files, attributes, names, source, notes)

"""Reading CelebA's metadata files (partition and attributes, the official .txt or Kaggle's .csv), strictly.

Every problem names the file and the line: a malformed row, an image listed twice, a count that disagrees,
text that is not UTF-8.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from nag.config.errors import UserInputError


class CelebAMetadataError(UserInputError, ValueError):
    """A partition/attribute file is malformed or disagrees with the images on disk."""


def _open(path: Path) -> TextIO:
    """A metadata file as UTF-8 text; another encoding is reported naming the file and line (as it is read)."""
    return path.open(newline="", encoding="utf-8")


def _decoding(path: Path, e: UnicodeDecodeError, text: str = "") -> CelebAMetadataError:
    return CelebAMetadataError(
        f"{path}: not UTF-8 text (byte {e.start} of a line{' ' + text if text else ''}); CelebA's metadata files "
        "are ASCII. Re-download it, or convert it with iconv."
    )


def _rows(path: Path, header_lines: int) -> Iterator[tuple[int, list[str]]]:
    comma = path.suffix.lower() == ".csv"
    lineno = 0
    try:
        with _open(path) as f:
            reader = csv.reader(f) if comma else (line.split() for line in f)
            for lineno, row in enumerate(reader, start=1):
                if lineno > header_lines and any(cell.strip() for cell in row):
                    yield lineno, [cell.strip() for cell in row]
    except UnicodeDecodeError as e:
        raise _decoding(path, e, f"after line {lineno}") from None
    except csv.Error as e:
        raise CelebAMetadataError(f"{path}, line {lineno + 1}: not a CSV row ({e}).") from None


def _header(path: Path) -> list[str]:
    """The column names of an attribute file (the 2nd line of the .txt, the 1st of the .csv, without image_id)."""
    try:
        with _open(path) as f:
            if path.suffix.lower() == ".csv":
                names = next(csv.reader(f), [])[1:]
            else:
                f.readline()  # the image count
                names = f.readline().split()
    except UnicodeDecodeError as e:
        raise _decoding(path, e, "in its header") from None
    if not names:
        raise CelebAMetadataError(f"{path}: no attribute names in its header.")
    return [n.strip() for n in names]


def read_partition(path: Path) -> dict[str, tuple[int, int]]:
    """``file name -> (split id, line number)`` from list_eval_partition.txt/.csv."""
    out: dict[str, tuple[int, int]] = {}
    for lineno, row in _rows(path, header_lines=1 if path.suffix.lower() == ".csv" else 0):
        if len(row) != 2 or row[1] not in ("0", "1", "2"):
            raise CelebAMetadataError(f"{path}, line {lineno}: expected '<image name> <0|1|2>', got {row!r}.")
        if row[0] in out:
            raise CelebAMetadataError(
                f"{path}, line {lineno}: lists {row[0]} a second time (first on line {out[row[0]][1]}); an image "
                "belongs to one split. Remove the repeated line."
            )
        out[row[0]] = (int(row[1]), lineno)
    if not out:
        raise CelebAMetadataError(f"{path}: the partition file lists no images.")
    return out


def read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Attribute names and ``file name -> (A,) uint8 0/1`` from list_attr_celeba.txt/.csv (values ±1)."""
    names = _header(path)
    is_csv = path.suffix.lower() == ".csv"
    rows: dict[str, np.ndarray] = {}
    for lineno, row in _rows(path, header_lines=1 if is_csv else 2):
        values = row[1:]
        if len(values) != len(names) or any(v not in ("1", "-1") for v in values):
            raise CelebAMetadataError(
                f"{path}, line {lineno}: expected an image name and {len(names)} values of 1/-1, got {len(values)} "
                f"values {values[:4]}{'…' if len(values) > 4 else ''}."
            )
        if row[0] in rows:
            raise CelebAMetadataError(f"{path}, line {lineno}: a second row for {row[0]}; an image has one row.")
        rows[row[0]] = (np.array(values, dtype=np.int8) > 0).astype(np.uint8)
    if not is_csv:
        with _open(path) as f:
            first = f.readline().strip()
        if first.isdigit() and int(first) != len(rows):
            raise CelebAMetadataError(f"{path}, line 1: says {first} images but the file has {len(rows)} rows.")
    return tuple(names), rows

"""Writing files: atomic, link-proof, confined to the folder nag writes into.

Every file nag writes goes through :func:`atomic_file`: a temporary sibling renamed into place, so a reader
never sees half a file, and a link planted at the target is replaced, never followed. :class:`OutputDir` is a
folder nag writes into: it is never itself a link, and nothing below it is reached through one, so no write
lands outside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from nag.config.errors import UserInputError
from nag.io.files import UnsafeFileError

#: The longest file name nag writes (file systems allow 255 bytes).
MAX_NAME_BYTES = 200


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _link_message(path: Path, what: str) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (
        f"{what} {path} is a symbolic link (to {target}); nag writes only into real folders, so that nothing "
        "lands outside them. Remove the link, or give the folder it points to."
    )


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; when the block ends without error, flush it to disk, ``fsync`` it
    and rename it onto ``path`` (atomic on POSIX), so a crash or a ``kill -9`` leaves the old file or the new
    one, never a truncated one. A link at ``path`` is replaced, not followed; a folder that is a link is refused.
    The file gets the usual permissions (0666 less the umask), not ``mkstemp``'s 0600."""
    path = Path(path)
    if os.path.islink(path.parent):
        raise UnsafeFileError(_link_message(path.parent, "the folder of"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:MAX_NAME_BYTES]}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (they are not results, and not valid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON atomically (see :func:`atomic_file`); non-finite numbers are written as null."""
    with atomic_file(path) as f:
        json.dump(finite(data), f, indent=2, sort_keys=True, allow_nan=False)


def safe_name(text: str, limit: int = 120) -> str:
    """``text`` as one file name: characters other than letters, digits, ``.=-_`` become ``_``, no leading dot,
    and a name longer than ``limit`` bytes is cut and given a hash of the whole, so it stays unique."""
    name = re.sub(r"[^\w.=-]", "_", text, flags=re.ASCII).lstrip(".") or "_"
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{name[: limit - len(digest) - 1]}~{digest}"


class OutputDir:
    """A folder nag writes into (a run's ``report/``, a sweep's ``compare/``, an evaluation's run dir).

    It must not be a link (refused with a message); it is created when the first file is written. Files are
    written into it through :meth:`file` + :func:`atomic_file` or the ``write_*`` helpers: sub-folders are
    created as real folders, and one that exists as a link is refused, so nothing is written outside.

    Args:
        path: The folder.
        what: Its name in messages, e.g. ``--out``.
    """

    def __init__(self, path: Path, what: str = "output folder") -> None:
        self.path, self.what = Path(path), what
        if os.path.islink(self.path):
            raise UnsafeFileError(_link_message(self.path, what))
        if self.path.exists() and not self.path.is_dir():
            raise UnsafeFileError(f"{what} {self.path} exists and is not a folder.")

    def file(self, relative: str | Path) -> Path:
        """The path of ``relative`` inside the folder, its folders created (never through a link). The folder
        itself is created on the first file, so a refused command leaves none behind."""
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise UnsafeFileError(f"{relative!r} is not a file name inside {self.path}.")
        if os.path.islink(self.path):
            raise UnsafeFileError(_link_message(self.path, self.what))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserInputError(f"cannot create {self.what} {self.path} ({e.strerror or e}).") from None
        folder = self.path
        for part in rel.parts[:-1]:
            folder = folder / part
            if os.path.islink(folder):
                raise UnsafeFileError(_link_message(folder, "the folder"))
            folder.mkdir(exist_ok=True)
        return folder / rel.parts[-1]

    def folder(self, relative: str) -> Path:
        """A sub-folder (created; refused if it is a link), e.g. for a TensorBoard writer."""
        path = self.file(Path(relative) / "_")
        return path.parent

    def write_bytes(self, relative: str | Path, data: bytes) -> Path:
        path = self.file(relative)
        with atomic_file(path, "wb") as f:
            f.write(data)
        return path

    def write_text(self, relative: str | Path, text: str) -> Path:
        path = self.file(relative)
        with atomic_file(path) as f:
            f.write(text)
        return path

    def write_json(self, relative: str | Path, data: Any) -> Path:
        path = self.file(relative)
        write_json_atomic(path, data)
        return path

"""Reading and writing files that nag does not control: bounded, link-proof, atomic.

Every file nag reads from a run dir, a sweep dir or a cache was written by someone (a colleague, a download, a
crafted archive) and is untrusted. The readers here refuse what is not a regular file (a symbolic link, a FIFO
that would block, a device), read at most a size limit, decode strictly, and parse YAML with a bound on alias
expansion ("billion laughs") and JSON without unbounded numbers, so a bad file costs a message, never a hang.

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
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from nag.config.errors import UserInputError

#: The most a run's config, overrides, metrics or failure record may hold (nag writes a few KB).
MAX_TEXT_BYTES = 1 << 20
#: The most nodes a stored YAML file may expand to, aliases followed (nag's configs have a few hundred).
MAX_YAML_NODES = 100_000
#: The longest file name nag writes (file systems allow 255 bytes).
MAX_NAME_BYTES = 200


class UnsafeFileError(UserInputError):
    """A file or folder nag will not read or write as it is (a link, not a regular file, too large, garbled)."""


# --- reading -------------------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def is_regular_file(path: Path) -> bool:
    """A regular file, not a link to one (what nag reads from an untrusted folder)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_dir(path: Path) -> bool:
    """A folder, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def read_bytes(path: Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError: No such file.
        UnsafeFileError: A link, a FIFO, a device or a folder, or larger than ``limit``.
    """
    mode = os.lstat(path).st_mode  # FileNotFoundError propagates: callers say what was expected
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(f"{path} is {_kind(mode)}, not a regular file; nag does not read through it.")
    # O_NOFOLLOW and O_NONBLOCK: a link or a FIFO swapped in after the check is refused or does not block.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UnsafeFileError(f"{path} is not a regular file; nag does not read it.")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError(f"{path} is larger than {limit:,} bytes; a file nag writes there is a few KB. Refused.")
    return data


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """UTF-8 text of a regular file (see :func:`read_bytes`); other encodings are refused naming the file."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnsafeFileError(f"{path} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}).") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader typed like OmegaConf's (``1e-3`` is a float, no timestamps, duplicate keys refused).

    Written out because OmegaConf's own loader is private API and we need the node graph before construction
    (to bound alias expansion, :func:`load_yaml`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                            key_node.start_mark)  # fmt: skip
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
        |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in _Loader.yaml_implicit_resolvers.items()
}


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """How many nodes ``node`` expands to with every alias followed, computed on the graph (linear time);
    more than ``limit``, or a node that contains itself, raises ValueError."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        key = id(n)
        if done:
            active.discard(key)
            children = ([c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode)
                        else n.value if isinstance(n, yaml.SequenceNode) else [])  # fmt: skip
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in active:
            raise ValueError("a node contains itself (a recursive alias)")
        active.add(key)
        stack.append((n, True))
        if isinstance(n, yaml.MappingNode):
            stack.extend((c, False) for pair in n.value for c in pair)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((c, False) for c in n.value)
    total = sizes[id(node)]
    if total > limit:
        raise ValueError(f"it expands to more than {limit:,} nodes (nested aliases)")
    return total


def load_yaml(path: Path, limit: int = MAX_TEXT_BYTES, max_nodes: int = MAX_YAML_NODES) -> Any:
    """A YAML file read as plain data (dicts, lists, strings, numbers), safely: at most ``limit`` bytes, at most
    ``max_nodes`` nodes once aliases are expanded, no Python objects, no duplicate keys.

    Raises:
        UnsafeFileError: Anything wrong with the file, in one message naming it.
    """
    text = read_text(path, limit)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, max_nodes)
        return loader.construct_document(node)
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise UnsafeFileError(f"{path} is not a readable YAML file nag wrote ({detail}).") from None
    finally:
        loader.dispose()


def _number(text: str) -> float | int | None:
    value = float(text) if len(text) > 18 else int(text)
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _finite_float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def load_json(path: Path, limit: int = MAX_TEXT_BYTES) -> Any:
    """A JSON file as plain data: at most ``limit`` bytes; NaN, ±Infinity and numbers beyond float range are
    read as None (nag writes them as null), so no value read back is non-finite.

    Raises:
        UnsafeFileError: Not a regular file, too large, not UTF-8, not JSON, or nested too deeply.
    """
    text = read_text(path, limit)
    try:
        return json.loads(text, parse_constant=lambda _: None, parse_int=_number, parse_float=_finite_float)
    except (ValueError, RecursionError) as e:
        raise UnsafeFileError(f"{path} is not valid JSON ({' '.join(str(e).split())[:120]}).") from None


def walk(root: Path, max_entries: int = 200_000, max_depth: int = 12) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below ``root`` with its ``lstat``, breadth first, never following a link (so a link loop
    cannot hang it); more than ``max_entries`` entries raises :class:`UnsafeFileError`."""
    seen = 0
    level = [root]
    for _ in range(max_depth + 1):
        below: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > max_entries:
                    raise UnsafeFileError(f"{root} holds more than {max_entries:,} files; not a folder nag wrote.")
                st = entry.stat(follow_symlinks=False)
                yield Path(entry.path), st
                if stat.S_ISDIR(st.st_mode):
                    below.append(Path(entry.path))
        level = below
        if not level:
            return


def links_below(root: Path, limit: int = 3) -> list[Path]:
    """Up to ``limit`` symbolic links below ``root`` (nag itself never makes one)."""
    found = []
    for path, st in walk(root):
        if stat.S_ISLNK(st.st_mode):
            found.append(path)
            if len(found) >= limit:
                break
    return found


# --- writing -------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _link_message(path: Path, what: str) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (f"{what} {path} is a symbolic link (to {target}); nag writes only into real folders, so that nothing "
            "lands outside them. Remove the link, or give the folder it points to.")  # fmt: skip


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

    It must not be a link (refused with a message); it is created if absent. Files are written into it through
    :meth:`file` + :func:`atomic_file` or the ``write_*`` helpers: sub-folders are created as real folders, and
    one that exists as a link is refused, so nothing is written outside.

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
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserInputError(f"cannot create {what} {self.path} ({e.strerror or e}).") from None

    def file(self, relative: str | Path) -> Path:
        """The path of ``relative`` inside the folder, its folders created (never through a link)."""
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise UnsafeFileError(f"{relative!r} is not a file name inside {self.path}.")
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

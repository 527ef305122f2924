"""Reading files that nag does not control: bounded and link-proof.

Every file nag reads from a run dir, a sweep dir or a cache was written by someone (a colleague, a download, a
crafted archive) and is untrusted. The readers here refuse what is not a regular file (a symbolic link, a FIFO
that would block, a device), read at most a size limit, decode strictly, and parse YAML with a bound on alias
expansion ("billion laughs") and JSON without unbounded numbers, so a bad file costs a message, never a hang.
Writing is :mod:`nag.io.output`'s.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from nag.config.errors import UserInputError

#: The most a run's config, overrides, metrics or failure record may hold (nag writes a few KB).
MAX_TEXT_BYTES = 1 << 20
#: The most nodes a stored YAML file may expand to, aliases followed (nag's configs have a few hundred).
MAX_YAML_NODES = 100_000


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
        raise UnsafeFileError(f"{path} is not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r}).") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader typed like OmegaConf's (``1e-3`` is a float, no timestamps, duplicate keys refused).

    Written out because OmegaConf's own loader is private API and we need the node graph before construction
    (to bound alias expansion, :func:`load_yaml`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
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
            children = (
                [c for pair in n.value for c in pair]
                if isinstance(n, yaml.MappingNode)
                else n.value
                if isinstance(n, yaml.SequenceNode)
                else []
            )
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


def _unreadable(path: Path, e: OSError) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} cannot be read ({e.strerror or type(e).__name__}); nag checks every entry of a folder it reads "
        "from someone else before using it, and one it cannot look into is refused, not passed over."
    )


def walk(root: Path, max_entries: int = 200_000, max_depth: int = 12) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below ``root`` with its ``lstat``, breadth first, never following a link (so a link loop
    cannot hang it). Fails closed: a folder or entry that cannot be listed or looked at (``OSError``), more than
    ``max_entries`` entries, or anything more than ``max_depth + 1`` levels below ``root`` (which the walk does not
    list: a link hidden there would pass every check built on it) raises :class:`UnsafeFileError`."""
    seen = 0
    level = [root]
    for depth in range(max_depth + 2):
        below: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as e:
                raise _unreadable(folder, e) from None
            if entries and depth > max_depth:  # the deepest folders are only looked into: anything there is refused
                raise UnsafeFileError(
                    f"{root} holds entries more than {max_depth + 1} levels down (in {folder}); not a folder nag wrote."
                )
            for entry in entries:
                seen += 1
                if seen > max_entries:
                    raise UnsafeFileError(f"{root} holds more than {max_entries:,} files; not a folder nag wrote.")
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as e:
                    raise _unreadable(Path(entry.path), e) from None
                yield Path(entry.path), st
                if stat.S_ISDIR(st.st_mode):
                    below.append(Path(entry.path))
        level = below
        if not level:
            return


def strays_below(root: Path, limit: int = 3) -> list[tuple[Path, str]]:
    """Up to ``limit`` entries below ``root`` that are neither a regular file nor a real folder (a symbolic link,
    a named pipe, a socket, a device), each with its kind: nag itself never makes one in a run or sweep dir, and
    a writer that opens one follows it (a link) or blocks on it (a FIFO)."""
    found = []
    for path, st in walk(root):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            found.append((path, _kind(st.st_mode)))
            if len(found) >= limit:
                break
    return found


def strays_shown(root: Path) -> str:
    """The strays below ``root`` for a refusal message, ``relative -> target`` for a link and ``relative (a named
    pipe)`` for the others ('' when there are none)."""

    def shown(path: Path, kind: str) -> str:
        if kind == "a symbolic link":
            try:
                return f"{path.relative_to(root)} -> {os.readlink(path)}"
            except OSError:
                pass
        return f"{path.relative_to(root)} ({kind})"

    return ", ".join(shown(p, k) for p, k in strays_below(root))

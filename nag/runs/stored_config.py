"""A run's stored config (``.hydra/config.yaml``), read as data and never resolved as it stands.

Hydra stores the config *unresolved*: ``data.cache_dir: ${paths.cache_dir}``, ``paths.data_dir:
${oc.env:NAG_DATA_DIR,data}``. Resolving such a file as OmegaConf would run whatever resolver it names: a crafted
``trainer.max_epochs: ${oc.env:SECRET_TOKEN}`` would copy a secret into a report, ``${nag.fresh_dir:/elsewhere}``
would create folders. So, checked when the file is read and before anything is resolved:

- references to the file's own keys (``${model.latent_dim}``, ``${paths.output_dir}/checkpoints``) are followed,
  within the file, with a depth bound (a recursive one is refused);
- an interpolation with a resolver (``${name:...}``) is accepted only at a key where nag's own config tree writes
  that very text (derived from ``conf/``, e.g. ``paths.cache_dir: ${oc.env:NAG_CACHE_DIR,'~/.cache/nag'}``), and
  even there it is never evaluated: the path keys get this machine's values instead, the others are not read;
- where nag writes (``paths.cache_dir``, ``data.cache_dir``, ``paths.output_dir``) always comes from this machine,
  whatever the file says; where it reads data from (``paths.data_dir``, ``data.root``) may come from the file.

Every other interpolation is refused, naming the file and the key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from nag import CONF_DIR
from nag.config.errors import UserInputError
from nag.config.keys import leaves
from nag.config.text import printable, quote
from nag.io.files import load_yaml

#: ``${a.b.c}``: a reference to another key of the same file.
REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[\w-]+)*)\}")
MISSING = "???"
_MAX_DEPTH = 16
#: The most steps (values visited) and characters one resolved value of a stored config may take.
MAX_STEPS = 100_000
MAX_VALUE_CHARS = 10_000


class StoredConfigError(UserInputError):
    """A stored run config nag will not use: malformed, or holding an interpolation it may not follow."""


def _check_keys(tree: Any, path: Path, prefix: str = "") -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise StoredConfigError(f"{path} has a key {k!r} under {prefix or 'the top'} that is not text.")
            _check_keys(v, path, f"{prefix}.{k}" if prefix else k)
    elif isinstance(tree, list):
        for v in tree:
            _check_keys(v, path, prefix)


def _only_references(text: str) -> bool:
    return "${" not in REFERENCE.sub("", text)


@lru_cache(maxsize=1)
def own_resolvers(conf_dir: Path = CONF_DIR) -> frozenset[tuple[str, str]]:
    """``(key, text)`` of every resolver interpolation nag's own config files write, keyed as in a composed
    config (``conf/paths/default.yaml``'s ``cache_dir`` is ``paths.cache_dir``; ``# @package _global_`` files
    are keyed from the root). Hydra's own group (``hydra/``) is left out: it is not stored in config.yaml."""
    found = set()
    for path in sorted(conf_dir.rglob("*.yaml")):
        rel = path.relative_to(conf_dir)
        if rel.parts[0] == "hydra":
            continue
        text = path.read_text()
        is_global = len(rel.parts) == 1 or "@package _global_" in text.split("\n", 1)[0]
        prefix = "" if is_global else ".".join(rel.parts[:-1])
        tree = load_yaml(path)
        for key, value in leaves(tree if isinstance(tree, dict) else {}).items():
            if isinstance(value, str) and "${" in value and not _only_references(value):
                found.add((f"{prefix}.{key}" if prefix else key, value))
    return frozenset(found)


def local_paths(run_dir: Path, given: Mapping[str, Any] | None = None) -> dict[str, str]:
    """This machine's ``paths.*`` for reading a run: ``paths/default.yaml`` resolved here (``$NAG_DATA_DIR``,
    ``$NAG_CACHE_DIR``), with ``paths.output_dir`` the run dir itself; ``given`` (e.g. the evaluating command's
    own ``paths``) wins."""
    from omegaconf import OmegaConf

    own = OmegaConf.load(CONF_DIR / "paths" / "default.yaml")  # nag's own file: trusted
    out = {"paths.output_dir": str(run_dir), "paths.data_dir": str(own.data_dir), "paths.cache_dir": str(own.cache_dir)}
    for key, value in (given or {}).items():
        out[key if key.startswith("paths.") else f"paths.{key}"] = str(value)
    return out


class StoredConfig:
    """The config a run was trained with, checked on reading (module docstring).

    Args:
        tree: The file's contents (a mapping).
        source: The file, for messages.
    """

    def __init__(self, tree: dict[str, Any], source: Path) -> None:
        self.tree, self.source = tree, source

    @classmethod
    def read(cls, path: Path) -> StoredConfig:
        """Read and check ``path``; :class:`StoredConfigError` (or ``UnsafeFileError``) names what is wrong."""
        tree = load_yaml(path)
        if not isinstance(tree, dict):
            raise StoredConfigError(
                f"{path} holds a {type(tree).__name__}, not a run config (a mapping of config groups such as data, "
                "model, prior, matching)."
            )
        _check_keys(tree, path)
        own = own_resolvers()
        for key, value in leaves(tree).items():
            if isinstance(value, str) and "${" in value and not _only_references(value) and (key, value) not in own:
                raise StoredConfigError(
                    f"{path}: {printable(key, 200)}={quote(value, 80)} is an interpolation nag's own configs do not "
                    "write there. A stored config is read as data: its resolvers (${oc.env:...}, "
                    "${nag.fresh_dir:...}, ...) are never run, since they could read the environment or create "
                    "folders. Refused."
                )
        return cls(tree, path)

    def has(self, dotted: str) -> bool:
        try:
            self._raw(dotted)
            return True
        except KeyError:
            return False

    def _raw(self, dotted: str) -> Any:
        node: Any = self.tree
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(dotted)
            node = node[part]
        return node

    def get(self, dotted: str, paths: Mapping[str, str]) -> Any:
        """The value at ``dotted`` with its references followed and this machine's ``paths`` in place of the
        file's (see :func:`local_paths`), as plain data.

        Raises:
            StoredConfigError: The key is absent, missing (``???``), a recursive reference, or a resolver that
                is never evaluated from a file.
        """
        try:
            raw = self._raw(dotted)
        except KeyError:
            raise StoredConfigError(f"{self.source} has no {dotted}; it is not a complete run config.") from None
        return _Resolution(self, paths).value(raw, dotted, 0)

    def section(self, name: str, paths: Mapping[str, str]) -> dict[str, Any]:
        """A whole section (e.g. ``data``) that must be a mapping."""
        value = self.get(name, paths)
        if not isinstance(value, dict):
            raise StoredConfigError(f"{self.source}: {name} is a {type(value).__name__}, not a mapping.")
        return value


class _Resolution:
    """One :meth:`StoredConfig.get`: references followed with a memo (each key resolved once, however often it
    is referred to) and a budget, so a small file cannot make the work or the result grow without bound (ten
    references to a key that holds ten references, eight levels deep, would be 10^8 characters)."""

    def __init__(self, config: StoredConfig, paths: Mapping[str, str]) -> None:
        self.config, self.paths, self.source = config, paths, config.source
        self.memo: dict[str, Any] = {}
        self.steps = 0

    def value(self, value: Any, key: str, depth: int) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise StoredConfigError(
                f"{self.source}: {key} takes more than {MAX_STEPS:,} steps to resolve; a run "
                "config nag wrote takes a few hundred. Refused."
            )
        if depth > _MAX_DEPTH:
            raise StoredConfigError(f"{self.source}: {key} is a recursive interpolation; refused.")
        paths = self.paths
        if key in paths and (key != "paths.data_dir" or not isinstance(value, str) or "${" in value):
            return paths[key]  # where nag writes is this machine's; where data is read may come from the file
        if key == "data.cache_dir":
            return paths["paths.cache_dir"]
        if isinstance(value, dict):
            return {k: self.value(v, f"{key}.{k}", depth) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{key}[{i}]", depth) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if value == MISSING:
            raise StoredConfigError(f"{self.source}: {key} is ??? (a value the run never had); refused.")
        if "${" not in value:
            return value
        if not _only_references(value):
            raise StoredConfigError(
                f"{self.source}: {key}={quote(value)} was set by Hydra when the run started; nag does not evaluate "
                "it from a file."
            )
        whole = REFERENCE.fullmatch(value)
        if whole:
            return self.follow(whole.group(1), key, depth)
        text = REFERENCE.sub(lambda m: str(self.follow(m.group(1), key, depth)), value)
        if len(text) > MAX_VALUE_CHARS:
            raise StoredConfigError(
                f"{self.source}: {key} resolves to more than {MAX_VALUE_CHARS:,} characters; a "
                "value nag writes is a path or a number. Refused."
            )
        if "${" in text:  # pieces that join into a new interpolation
            raise StoredConfigError(f"{self.source}: {key}={quote(value)} builds an interpolation; refused.")
        return text

    def follow(self, ref: str, key: str, depth: int) -> Any:
        if ref in self.memo:  # each reuse costs what it expands to: a memo must not build a DAG of 10^11 leaves
            result, size = self.memo[ref]
            self.steps += size
            if self.steps > MAX_STEPS:
                raise StoredConfigError(
                    f"{self.source}: {key} expands to more than {MAX_STEPS:,} values; a run "
                    "config nag wrote has a few hundred. Refused."
                )
            return copy.deepcopy(result)
        if ref in self.paths and not self.config.has(ref):
            return self.paths[ref]
        try:
            raw = self.config._raw(ref)
        except KeyError:
            raise StoredConfigError(
                f"{self.source}: {key} refers to ${{{printable(ref, 200)}}}, which the file does not have."
            ) from None
        result = self.value(raw, ref, depth + 1)
        self.memo[ref] = (result, _size(result))
        return result


def _size(tree: Any) -> int:
    """How many values ``tree`` holds (containers and leaves), counted up to :data:`MAX_STEPS` + 1."""
    count, stack = 0, [tree]
    while stack and count <= MAX_STEPS:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count

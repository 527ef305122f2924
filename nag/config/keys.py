"""Which config keys belong to this machine or this invocation rather than to a run: one declared set, read by
``resume=`` (what is never carried over or taken from a file), the stored-config reader (where nag writes is this
machine's), the TensorBoard hparams (not hyper-parameters) and Hydra's run names (``conf/hydra/default.yaml``'s
``exclude_keys``, held to :data:`MACHINE_KEYS` by a test)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: What one invocation continues from or where it runs: never carried over from the run being resumed.
PER_INVOCATION = ("resume", "ckpt_path", "hydra.run.dir", "hydra.output_subdir")
#: Where nag writes: this machine's business, never a stored run's.
WRITE_KEYS = ("paths.output_dir", "paths.cache_dir", "data.cache_dir")
#: Last parts of keys that say where a component writes (a callback's ``dirpath``, a logger's ``save_dir``).
WRITE_KEY_ENDINGS = ("dirpath", "save_dir", "default_root_dir", "output_dir", "cache_dir", "log_dir")
#: Where nag reads data from: may come from a stored config (a colleague's run names its data).
READ_KEYS = ("paths.data_dir", "data.root")
#: This machine's keys: neither a run's hyper-parameters nor part of its name.
MACHINE_KEYS = ("ckpt_path", "resume", *WRITE_KEYS, *READ_KEYS)


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a config tree by its dotted key (``model.encoder.channels[1]``: list items by index)."""
    if isinstance(tree, Mapping):
        return {
            k: v
            for key, value in tree.items()
            for k, v in leaves(value, f"{prefix}.{key}" if prefix else str(key)).items()
        }
    if isinstance(tree, Sequence) and not isinstance(tree, str | bytes):
        return {k: v for i, value in enumerate(tree) for k, v in leaves(value, f"{prefix}[{i}]").items()}
    return {prefix: tree}


def is_machine_key(key: str) -> bool:
    """Whether ``key`` (an override's key) is this machine's or this invocation's, not a setting of the run."""
    return key in MACHINE_KEYS or key in PER_INVOCATION or key.startswith(("paths.", "hydra."))

"""Reading a checkpoint file that may come from anyone: bounded, unpickled safely, validated before use.

:func:`read_checkpoint` is the one door every checkpoint comes in by (training's ``ckpt_path=`` and ``resume=``,
``NAGModule.load_from_checkpoint``, evaluation, report, compare). Before anything is built from it:

- the file is a zip archive as ``torch.save`` writes it (entries stored, not compressed), no larger than
  :data:`MAX_CHECKPOINT_BYTES`, and does not inflate beyond its size (a 390 KB file holding a deflated
  500 MB tensor is refused before ``torch.load`` allocates it);
- it is unpickled by torch's ``weights_only`` unpickler (no code objects);
- its structure is what ``nag.train`` writes: a ``state_dict`` of finite tensors (a non-finite one is named),
  ``hyper_parameters`` a mapping, ``global_step``/``epoch`` non-negative integers, ``nag_draw_seed`` an integer
  or null, and Lightning's callback state (a ``ModelCheckpoint``'s best and last paths) confined to its own
  checkpoint folder, so restoring it can never make Lightning delete or write a file elsewhere.

Which classes the hyper-parameters may build is :mod:`nag.runs.trusted`'s business.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from nag.config.errors import MissingFileError, UserInputError
from nag.config.text import first_line, quote

#: The largest checkpoint read (the report AE at 64 px with Adam's state: 480 MB); ``$NAG_MAX_CHECKPOINT_BYTES``.
MAX_CHECKPOINT_BYTES = int(os.environ.get("NAG_MAX_CHECKPOINT_BYTES", 16 << 30))
#: The most a checkpoint's entries may inflate to, beyond the file's own size (``torch.save`` stores them raw).
INFLATION_SLACK = 64 << 20
_CHECKPOINT_PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")


class CheckpointError(UserInputError):
    """A checkpoint file that cannot be used: unreadable, not nag's, malformed, or of another model."""


def check_archive(p: Path, key: str, shown: Any) -> None:
    size = p.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{key}={shown} is {size:,} bytes, more than NAG_MAX_CHECKPOINT_BYTES="
            f"{MAX_CHECKPOINT_BYTES:,}; set that variable to read it."
        )
    if not zipfile.is_zipfile(p):
        raise CheckpointError(
            f"{key}={shown} is not a readable checkpoint: it is truncated or not a .ckpt file (no zip archive, "
            "which is how torch.save writes one)."
        )
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(
            f"{key}={shown} is not a readable checkpoint: it is truncated or not a .ckpt file ({first_line(e)})."
        ) from None
    inflated = sum(i.file_size for i in infos)
    if len(infos) > 1_000_000 or inflated > size + INFLATION_SLACK:
        raise CheckpointError(
            f"{key}={shown} would inflate from {size:,} to {inflated:,} bytes when read (compressed entries; "
            "torch.save stores them uncompressed). Refused before reading it."
        )


def _check_int(
    ckpt: Mapping[str, Any], name: str, key: str, shown: Any, low: int = 0, high: int = 2**63, nullable: bool = False
) -> None:
    if name not in ckpt:
        return
    value = ckpt[name]
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise CheckpointError(
            f"{key}={shown}: {name}={value!r} must be an integer in [{low}, {high}); the file is damaged or crafted."
        )


def _confined(path: Any, folder: PurePosixPath) -> bool:
    """Whether a stored checkpoint path is a file directly inside ``folder`` (no ``..``, no other folder)."""
    if path in ("", None):
        return True
    if not isinstance(path, str):
        return False
    p = PurePosixPath(path)
    return ".." not in p.parts and p.parent == folder and p.name not in ("", ".", "..")


def check_callback_state(ckpt: Mapping[str, Any], key: str, shown: Any) -> None:
    """Lightning restores each callback's state from the checkpoint; a ``ModelCheckpoint`` later *deletes* its
    previous best file by the path it restored. Every such path must name a file directly in the state's own
    ``dirpath``, and that folder no ``..``."""
    callbacks = ckpt.get("callbacks")
    if callbacks is None:
        return
    if not isinstance(callbacks, Mapping):
        raise CheckpointError(f"{key}={shown}: callbacks is a {type(callbacks).__name__}, not a mapping.")
    for name, state in callbacks.items():
        if not isinstance(state, Mapping) or not any(
            k in state for k in (*_CHECKPOINT_PATHS, "dirpath", "best_k_models")
        ):
            continue
        lacking = [k for k in ("dirpath", "best_model_path", "best_model_score") if k not in state]
        if lacking:  # Lightning's ModelCheckpoint.load_state_dict reads these without a default
            raise CheckpointError(
                f"{key}={shown}: callback state {str(name)[:60]} names checkpoint paths but lacks "
                f"{lacking}; it is not a state Lightning wrote. Refused."
            )
        dirpath = state.get("dirpath")
        if dirpath is not None and (not isinstance(dirpath, str) or ".." in PurePosixPath(dirpath).parts):
            raise CheckpointError(f"{key}={shown}: callback state {str(name)[:60]} has dirpath={dirpath!r}; refused.")
        folder = PurePosixPath(dirpath) if dirpath else None
        paths = [(k, state.get(k)) for k in _CHECKPOINT_PATHS if k in state]
        best_k = state.get("best_k_models", {})
        if not isinstance(best_k, Mapping):
            raise CheckpointError(f"{key}={shown}: callback state {str(name)[:60]} best_k_models is not a mapping.")
        paths += [("best_k_models", p) for p in best_k]
        for what, path in paths:
            if folder is None and path not in ("", None) or folder is not None and not _confined(path, folder):
                raise CheckpointError(
                    f"{key}={shown}: callback state {str(name)[:60]} has {what}={str(path)[:120]!r}, not a file in "
                    f"its own checkpoint folder {dirpath!r}; Lightning would delete or write it on resuming. Refused."
                )


#: The deepest a checkpoint's mappings and lists may nest (every later check and builder recurses through them).
MAX_NESTING = 64


def _nodes(tree: Any, limit: int = MAX_NESTING) -> Iterator[tuple[Any, int]]:
    """Every node of ``tree``'s mappings and lists with its depth (1: ``tree``), without recursion (a crafted file
    may nest 4,000 deep); the children of a node at depth ``limit`` or deeper are not visited."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if depth <= limit:
            children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list | tuple) else ()
            stack.extend((c, depth + 1) for c in children)


def _depth(tree: Any) -> int:
    """How deeply ``tree``'s mappings and lists nest, stopping at :data:`MAX_NESTING` + 1."""
    return max(d for n, d in _nodes(tree) if isinstance(n, Mapping | list | tuple) or d == 1)


def check_structure(ckpt: Any, key: str, shown: Any) -> None:
    """What ``nag.train`` writes (module docstring); :class:`CheckpointError` names the first thing wrong."""
    import torch

    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{key}={shown} is not a Lightning checkpoint (no state_dict).")
    if not isinstance(ckpt.get("hyper_parameters"), dict):
        raise CheckpointError(
            f"{key}={shown} was not written by nag.train: it stores no hyper-parameters to rebuild the model from."
        )
    for name, value in ckpt["state_dict"].items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{key}={shown}: state_dict[{str(name)[:80]!r}] is a {type(value).__name__}, "
                "not a tensor; the file is damaged or crafted."
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{key}={shown}: the weights {name} hold NaN or infinite values; nothing "
                "evaluated or trained from them would mean anything. Refused."
            )
    depth = _depth(ckpt)
    if depth > MAX_NESTING:
        raise CheckpointError(
            f"{key}={shown} nests its contents more than {MAX_NESTING} levels deep (nag's are "
            "about 6); the file is damaged or crafted."
        )
    _check_int(ckpt, "global_step", key, shown)
    _check_int(ckpt, "epoch", key, shown)
    _check_int(ckpt, "nag_draw_seed", key, shown, nullable=True)
    check_callback_state(ckpt, key, shown)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", key: str = "ckpt_path") -> dict[str, Any]:
    """Load a checkpoint written by ``nag.train``, safely (module docstring).

    Args:
        path: The ``.ckpt`` file.
        map_location: Where tensors go.
        key: The config key that named the file, for messages.

    Raises:
        MissingFileError: No such file.
        CheckpointError: Not a checkpoint, truncated, inflating, holding code objects, malformed, or not nag's.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{key}={path} does not exist; give a .ckpt file written by nag.train.")
    check_archive(p, key, path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(
                f"{key}={path} holds Python objects that torch's safe loader refuses to build "
                f"({first_line(e)}); nag will not unpickle it."
            ) from None
        raise CheckpointError(f"{key}={path} is not a checkpoint (it could not be unpickled: {e}).") from None
    except Exception as e:  # torch reports a text file, a truncated zip, a wrong magic number in many ways
        raise CheckpointError(
            f"{key}={path} is not a readable checkpoint: it is truncated or not a .ckpt file "
            f"({type(e).__name__}: {first_line(e) or 'empty file'})."
        ) from None
    check_structure(ckpt, key, path)
    from nag.runs.trusted import moved

    ckpt["hyper_parameters"] = moved(ckpt["hyper_parameters"])  # classes named where they lived before
    return ckpt


def check_optimizer_state(
    ckpt: Mapping[str, Any], optimizer: Any, source: str, key: str = "model.optimizer", scheduler: Any = None
) -> None:
    """Refuse a checkpoint whose stored optimizer (or scheduler) state disagrees with the configured one.

    Lightning restores the optimizer's param groups and the scheduler's state as stored, hyper-parameters
    included: a group saying ``lr: 7.5`` (whatever its ``initial_lr`` says) would train at 7.5 while the config and
    every record say 0.001, and a scheduler state carries its milestones and base rates. So the configured optimizer
    and scheduler are built fresh, the scheduler stepped to the stored epoch, and every value they set compared
    with the stored one: the values training goes on with after the restore.

    Args:
        ckpt: The checkpoint.
        optimizer: The configured optimizer, built fresh on the model's parameters (``configure_optimizers``).
        source: The file, for messages.
        scheduler: The configured scheduler on ``optimizer`` (None without one).
    """
    states = ckpt.get("optimizer_states") or []
    if not isinstance(states, list):
        raise CheckpointError(f"{source}: optimizer_states is a {type(states).__name__}, not a list.")
    if scheduler is not None and states:
        _step_like(scheduler, ckpt, source)
    expected = optimizer.param_groups
    for state in states[:1]:
        groups = state.get("param_groups") if isinstance(state, Mapping) else None
        if not isinstance(groups, list) or not groups or len(groups) != len(expected):
            raise CheckpointError(
                f"{source}: its optimizer state has no param_groups like the configured "
                "optimizer's; the file is damaged."
            )
        for group, want_group in zip(groups, expected, strict=True):
            if not isinstance(group, Mapping):
                raise CheckpointError(f"{source}: an optimizer param group is not a mapping; the file is damaged.")
            for name, want in want_group.items():
                if name == "params" or (name not in group and name == "initial_lr"):
                    continue
                have = group.get(name)
                if name not in group or not _same(have, want):
                    raise CheckpointError(
                        f"{source}: its stored optimizer state has {name}={quote(have)} but {key}.{name}={want!r} "
                        "(as the configured optimizer and scheduler set it at the stored epoch); Lightning would "
                        "restore the stored one and train with it while every record says the configured one. "
                        "Refused: use the setting the checkpoint was trained with, or start a new run."
                    )
        for tensor in _tensors(state.get("state")):
            if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                raise CheckpointError(f"{source}: its stored optimizer state holds NaN or infinite values; refused.")


#: Scheduler state that says where it is, not how it schedules (compared through the rates it gives).
_SCHEDULER_BOOKKEEPING = {"_step_count", "_get_lr_called_within_step", "_is_initial", "verbose", "lr_lambdas"}
#: The most epochs a stored scheduler may claim (the fresh one is stepped as far to compare it).
MAX_SCHEDULER_EPOCHS = 100_000


def _step_like(scheduler: Any, ckpt: Mapping[str, Any], source: str) -> None:
    """Step the fresh ``scheduler`` to the stored scheduler's epoch, and refuse a stored state that differs from
    the fresh one in anything but bookkeeping (its milestones, factors, base rates, last rates)."""
    import warnings

    stored = (ckpt.get("lr_schedulers") or [None])[0]
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"{source}: it stores no scheduler state, but model.scheduler is set; refused.")
    fresh = scheduler.state_dict()
    unknown = sorted(map(str, set(stored) - set(fresh)))
    if unknown:
        raise CheckpointError(
            f"{source}: its scheduler state has keys the configured scheduler does not ({quote(unknown)}); refused."
        )
    epoch = stored.get("last_epoch") if "last_epoch" in fresh else 0
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_SCHEDULER_EPOCHS:
        raise CheckpointError(f"{source}: its scheduler state has last_epoch={quote(epoch)}; refused.")
    if "best" in fresh:  # ReduceLROnPlateau follows a metric: not replayed, but the rates it lowered are checked
        _take_plateau_rates(scheduler, stored, epoch, source)
        fresh = scheduler.state_dict()
    elif "last_epoch" in fresh:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "step() before optimizer.step()": no training happens here
            for _ in range(epoch - scheduler.last_epoch):
                scheduler.step()
        fresh = scheduler.state_dict()
    for name, want in fresh.items():
        if name in _SCHEDULER_BOOKKEEPING or name in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            continue
        if name not in stored or not _same(stored[name], want):
            raise CheckpointError(
                f"{source}: its stored scheduler state has {name}={quote(stored.get(name))} but the configured "
                f"model.scheduler gives {want!r}; Lightning would restore the stored one. Refused."
            )


def _tensors(tree: Any) -> list[Any]:
    import torch

    return [n for n, _ in _nodes(tree) if isinstance(n, torch.Tensor)]  # every tensor the nesting check allows


def _take_plateau_rates(scheduler: Any, stored: Mapping[str, Any], epoch: int, source: str) -> None:
    """ReduceLROnPlateau lowers each group's rate by its factor (never below its floor, never by less than its
    ``eps``) when the monitored metric stops improving, which a check cannot replay. A stored rate that the
    configured rate reaches by at most one such reduction per stored epoch is one training reached: the fresh
    optimizer and scheduler take it, so the comparisons that follow accept it and nothing else (a rate set by
    hand, or lowered by another factor, is refused). Written here because torch has no inverse of its step."""
    rates = stored.get("_last_lr")
    groups = scheduler.optimizer.param_groups
    if not isinstance(rates, list) or len(rates) != len(groups):
        raise CheckpointError(
            f"{source}: its scheduler state has _last_lr={quote(rates)}, not one rate per optimizer param group; "
            "refused."
        )
    for i, (group, rate) in enumerate(zip(groups, rates, strict=True)):
        reached = [float(group["lr"])]
        for _ in range(epoch):
            new = max(reached[-1] * scheduler.factor, scheduler.min_lrs[i])
            if not reached[-1] - new > scheduler.eps:
                break
            reached.append(new)
        match = next((r for r in reached if _same(rate, r)), None)
        if match is None:
            raise CheckpointError(
                f"{source}: its stored scheduler state has _last_lr={quote(rates)}, which the configured rate "
                f"{reached[0]!r} does not reach by model.scheduler's factor {scheduler.factor!r} in "
                f"{epoch} epochs; Lightning would restore it and train with it. Refused."
            )
        group["lr"] = match
    scheduler._last_lr = [group["lr"] for group in groups]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    try:
        import torch

        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return _same(torch.as_tensor(a).tolist(), torch.as_tensor(b).tolist())
    except (TypeError, ValueError):
        return False
    return a == b

"""Loading a trained model from a checkpoint that may come from anyone, and loading weights into a model.

:func:`load_module` is ``NAGModule.load_from_checkpoint``: unlike Lightning's generic loader it reads the file
with torch's ``weights_only`` unpickler (:mod:`nag.runs.checkpoint_file`), accepts only ``NAGModule``'s own
hyper-parameters (Lightning's ``_instantiator`` hook, for one, names code to call), builds nothing outside
:mod:`nag.runs.trusted`'s allow-list (each part of its own kind), and reports a malformed checkpoint or one of
another architecture in one message instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from nag.config.errors import UserInputError
from nag.config.text import quote
from nag.runs.checkpoint_file import CheckpointError, read_checkpoint
from nag.runs.trusted import CHECKPOINT_ROLES, OPTIONAL_DEFAULTS, UntrustedConfigError, check_config
from nag.training.module import HOW_KEYS, HPARAM_KEYS

if TYPE_CHECKING:
    from nag.training.module import NAGModule

#: The widest code a checkpoint may claim (nag's models use 8 to 512; the file's own tensors are checked too).
MAX_LATENT_DIM = 1 << 16


def check_hparams(hparams: Mapping[str, Any], source: str | Path) -> None:
    """A checkpoint's hyper-parameters before anything is built from them: exactly nag's keys, ``latent_dim`` a
    positive integer, each part a class of its kind on the allow-list (:mod:`nag.runs.trusted`)."""
    unknown = sorted(map(str, set(hparams) - set(HPARAM_KEYS)))
    if unknown:
        raise UntrustedConfigError(
            f"checkpoint {source} stores unexpected hyper-parameters {unknown}; nag checkpoints hold "
            f"only {list(HPARAM_KEYS)}. Refused."
        )
    missing = [k for k in HPARAM_KEYS if k not in hparams and k not in OPTIONAL_DEFAULTS]
    if missing:
        raise CheckpointError(
            f"checkpoint {source} lacks the hyper-parameter(s) {missing}; nag checkpoints hold "
            f"{list(HPARAM_KEYS)}. The file is damaged or not nag's."
        )
    dim = hparams["latent_dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_LATENT_DIM:
        raise CheckpointError(
            f"checkpoint {source}: latent_dim={quote(dim)} must be a positive integer of at most {MAX_LATENT_DIM:,}."
        )
    check_config(dict(hparams), f"checkpoint {source} hyper_parameters", roles=CHECKPOINT_ROLES)


def load_module(
    cls: type[NAGModule], checkpoint_path: str | Path, map_location: Any = None, strict: bool = True, **kwargs: Any
) -> NAGModule:
    """``cls`` rebuilt from ``checkpoint_path`` (see ``NAGModule.load_from_checkpoint`` for the arguments)."""
    ckpt = read_checkpoint(checkpoint_path, map_location="cpu", key=kwargs.pop("_key", "checkpoint"))
    how = {k: kwargs.pop(k) for k in HOW_KEYS if k in kwargs}  # not hyper-parameters
    hparams = {**ckpt["hyper_parameters"], **kwargs}
    check_hparams(hparams, checkpoint_path)
    # What the hyper-parameters claim (a latent_dim of 12 million in a 131 KB file) is checked against the file's
    # own tensors first, on the meta device, which allocates nothing: only a model the weights fit is built.
    with torch.device("meta"):
        shell = _build(cls, hparams, how, checkpoint_path)
    check_shapes(shell, ckpt["state_dict"], str(checkpoint_path), strict=strict)
    model = _build(cls, hparams, how, checkpoint_path)
    # A replaced prior or matching distance keeps the state built from its new config (the stored one
    # describes the old: a prior's mean and variance are buffers).
    own = {
        f"{part}.{k}": v
        for part in ("prior", "matching")
        if part in kwargs
        for k, v in getattr(model, part).state_dict().items()
    }
    load_weights(model, {**ckpt["state_dict"], **own}, str(checkpoint_path), strict=strict)
    return model.to(map_location if map_location is not None else "cpu")


def _build(cls: type[NAGModule], hparams: dict[str, Any], how: dict[str, Any], source: str | Path) -> NAGModule:
    try:
        return cls(**hparams, **how)
    except UserInputError:
        raise
    except Exception as e:  # Hydra wraps a constructor's TypeError; a crafted file can fail in many ways
        raise CheckpointError(
            f"checkpoint {source}: its hyper-parameters do not build a model ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); the file is damaged or crafted."
        ) from None


def load_weights(model: nn.Module, state_dict: Mapping[str, Tensor], source: str, strict: bool = True) -> None:
    """``model.load_state_dict`` with one readable message when the weights belong to another architecture."""
    check_shapes(model, state_dict, source, strict)
    # Checked: whatever strict says, the keys left missing keep the model's own values.
    model.load_state_dict(state_dict, strict=False)


def check_shapes(model: nn.Module, state_dict: Mapping[str, Tensor], source: str, strict: bool = True) -> None:
    """One readable message when ``state_dict`` holds weights of another architecture than ``model``'s."""
    own = model.state_dict()
    mismatched = [k for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if mismatched or (strict and (missing or unexpected)):
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("different shapes", mismatched), ("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise CheckpointError(
            f"{source} holds weights of another architecture than the configured model ({detail}). "
            "Use the model/data settings it was trained with (its run's .hydra/config.yaml)."
        )

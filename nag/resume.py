"""Continuing a run: ``python -m nag.train resume=<run dir> [overrides]`` and ``ckpt_path=<file>``.

``resume=<run dir>`` continues that run *in its own directory*: the command is rewritten, before Hydra composes
it, into the run's original overrides (``<run dir>/.hydra/overrides.yaml``) plus the new ones plus
``hydra.run.dir=<run dir>``, so the config is the run's own and only what the new command says changes. The
original ``.hydra/`` stays as it was (how the run started); the resumed command's config goes to
``.hydra/resume/``. Training continues from ``checkpoints/last.ckpt`` into the same TensorBoard run.

Whichever way a run is continued, the checkpoint is read safely and compared with the configured model: a
resume that would change the model, prior, matching distance or optimizer is refused, listing the differences
(Lightning would otherwise load the old weights and optimizer state under new hyper-parameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from nag.errors import ConfigError, MissingFileError, UserInputError

# Overrides that belong to one invocation, never carried over from the run being resumed.
_PER_INVOCATION = ("resume", "ckpt_path", "hydra.run.dir", "hydra.output_subdir")
# Hydra's options that take a separate value argument (``--cfg job``).
_OPTIONS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                       "--config-dir", "-cd", "--experimental-rerun"}  # fmt: skip


def last_checkpoint(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``a@pkg=x`` -> ``a.b`` / ``a.b`` / ``a@pkg``."""
    return override.lstrip("~+").split("=", 1)[0]


def override_values(overrides: list[str]) -> dict[str, str]:
    """``["prior.mean=-3", "+x=1", "~y"]`` -> ``{"prior.mean": "-3", "x": "1"}`` (deletions carry no value)."""
    out = {}
    for o in overrides:
        if "=" in o and not o.startswith("~"):
            out[override_key(o)] = o.split("=", 1)[1]
    return out


def expand_resume(argv: Sequence[str]) -> list[str]:
    """Rewrite a ``resume=<run dir>`` command line into the run's own overrides plus the new ones.

    Other command lines come back unchanged. New overrides replace the run's own of the same key.
    """
    args = list(argv)
    overrides: list[tuple[int, str]] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
        elif a in _OPTIONS_WITH_VALUE:
            skip = True
        elif not a.startswith("-") and "=" in a:
            overrides.append((i, a))
    resume = [a.split("=", 1)[1] for _, a in overrides if override_key(a) == "resume" and not a.startswith("~")]
    if not resume or not resume[-1] or resume[-1] == "null":
        return args
    if "-m" in args or "--multirun" in args:
        raise UserInputError("resume=<run dir> continues one run; it cannot be combined with -m/--multirun.")
    run_dir = Path(resume[-1]).expanduser()
    stored = run_dir / ".hydra" / "overrides.yaml"
    if not stored.is_file():
        raise MissingFileError(
            f"resume={resume[-1]}: {stored} does not exist; give the directory of a run started by "
            "python -m nag.train (it holds .hydra/ and checkpoints/)."
        )
    if not last_checkpoint(run_dir).is_file():
        raise MissingFileError(
            f"resume={resume[-1]}: the run has no {last_checkpoint(run_dir).relative_to(run_dir)} to continue from "
            "(it stopped before its first checkpoint); start it again instead."
        )
    original = [str(o) for o in (OmegaConf.load(stored) or [])]
    new = [a for _, a in overrides if override_key(a) not in _PER_INVOCATION]
    replaced = {override_key(a) for a in new}
    kept = [o for o in original if override_key(o) not in replaced and override_key(o) not in _PER_INVOCATION]
    positions = {i for i, _ in overrides}
    options = [a for i, a in enumerate(args) if i not in positions]
    return [*options, *kept, *new, f"resume={run_dir}", f"hydra.run.dir={run_dir}", "hydra.output_subdir=.hydra/resume"]


def checkpoint_to_continue(cfg: DictConfig) -> str | None:
    """The checkpoint a training config continues from (``resume`` or ``ckpt_path``), checked for existence."""
    resume, ckpt = cfg.get("resume"), cfg.get("ckpt_path")
    if not resume:
        return ckpt
    if ckpt:
        raise ConfigError(f"give resume=<run dir> or ckpt_path=<file>, not both (resume={resume}, ckpt_path={ckpt}).")
    out = Path(cfg.paths.output_dir).resolve()
    if Path(resume).expanduser().resolve() != out:
        raise ConfigError(
            f"resume={resume} continues that run in its own directory, but this run writes to {out}; "
            f"start it as: python -m nag.train resume={resume}"
        )
    last = last_checkpoint(out)
    if not last.is_file():
        raise MissingFileError(f"resume={resume}: {last} does not exist.")
    return str(last)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def config_key(hparam: str) -> str:
    """A model hyper-parameter's key in the training config (``prior.mean``, ``model.optimizer.lr``)."""
    return hparam if hparam.split(".")[0] in ("prior", "matching") else f"model.{hparam}"


def check_same_model(stored: Mapping[str, Any], configured: Mapping[str, Any], source: str) -> None:
    """Refuse to continue a checkpoint under different model hyper-parameters; name every difference."""
    old, new = _leaves(stored), _leaves(configured)
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        shown = "; ".join(f"{config_key(k)}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
        raise ConfigError(
            f"{source} was trained with other settings than this command asks for ({shown}"
            f"{' ...' if len(diff) > 6 else ''}). Continuing a run cannot change its model, prior, matching "
            "distance or optimizer: drop those overrides, or start a new run."
        )


def continue_logging(cfg: DictConfig, global_step: int) -> None:
    """Point the run's loggers at the logger run it already has, so a resumed run stays one TensorBoard run;
    TensorBoard hides the events the killed run wrote after ``global_step`` (``purge_step``)."""
    from hydra.utils import get_class
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in (cfg.get("logger") or {}).values():
        if logger is None or "save_dir" not in logger:
            continue
        parent = Path(logger.save_dir) / str(logger.get("name") or "")
        existing = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        with open_dict(logger):
            if len(existing) == 1:
                logger.version = existing[0]
            if issubclass(get_class(logger._target_), TensorBoardLogger):
                logger.purge_step = global_step

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

from omegaconf import DictConfig, open_dict

from nag.config.errors import ConfigError, MissingFileError, UserInputError
from nag.config.keys import PER_INVOCATION, leaves
from nag.io.files import load_yaml
from nag.runs.overrides import StoredOverrideError, carried_over, check_stored, override_key
from nag.runs.run_dir import OVERRIDES, RESUME_SUBDIR, RunDir
from nag.runs.trusted import OPTIONAL_DEFAULTS

# Hydra's options that take a separate value argument (``--cfg job``).
_OPTIONS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def expand_resume(argv: Sequence[str]) -> list[str]:
    """Rewrite a ``resume=<run dir>`` command line into the run's own overrides plus the new ones.

    Other command lines come back unchanged. New overrides replace the run's own of the same key. The run dir
    is untrusted: it must hold no links (:meth:`RunDir.check_resumable`), its stored overrides must pass
    :func:`nag.runs.overrides.check_stored`, and the config they compose must pass
    :func:`nag.runs.trusted.check_training_config`, all before Hydra writes or builds anything.
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
    run = RunDir(run_dir)
    run.check_resumable(resume[-1])
    new = [a for _, a in overrides if override_key(a) not in PER_INVOCATION]
    stored = load_yaml(run / OVERRIDES)
    if isinstance(stored, list):  # the per-invocation ones are dropped unchecked: they never come back
        stored = [o for o in stored if not (isinstance(o, str) and override_key(o) in PER_INVOCATION)]
    kept = carried_over(check_stored(stored, run / OVERRIDES), new)
    _check_composed(kept, run / OVERRIDES)
    positions = {i for i, _ in overrides}
    options = [a for i, a in enumerate(args) if i not in positions]
    return [
        *options,
        *kept,
        *new,
        f"resume={run_dir}",
        f"hydra.run.dir={run_dir}",
        f"hydra.output_subdir={RESUME_SUBDIR}",
    ]


def _check_composed(kept: list[str], source: Path) -> None:
    """Compose the training config with the stored overrides alone (every key must exist) and check what it
    would build against the allow-list, naming ``source`` on any problem."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from nag.config.compose import compose
    from nag.runs.trusted import UntrustedConfigError, check_training_config

    try:
        cfg = compose("train", kept)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise StoredOverrideError(
            f"{source}: its overrides do not compose into a nag config ({' '.join(str(e).split())[:300]})."
        ) from None
    try:
        check_training_config(cfg, "config")
    except UntrustedConfigError as e:
        raise StoredOverrideError(f"{source}: the config its overrides compose is refused: {e}") from None


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
    last = RunDir(out).last_ckpt
    if last is None:
        raise MissingFileError(f"resume={resume}: {out}/checkpoints/last.ckpt does not exist (as a file).")
    return str(last)


def config_key(hparam: str) -> str:
    """A model hyper-parameter's key in the training config (``prior.mean``, ``model.optimizer.lr``)."""
    return hparam if hparam.split(".")[0] in ("prior", "matching") else f"model.{hparam}"


def check_same_model(stored: Mapping[str, Any], configured: Mapping[str, Any], source: str) -> None:
    """Refuse to continue a checkpoint under different model hyper-parameters; name every difference (a key an
    older checkpoint lacks counts as its default, the value it was trained with)."""
    old, new = leaves({**OPTIONAL_DEFAULTS, **stored}), leaves(configured)
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

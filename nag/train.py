"""Training entry point: ``python -m nag.train [overrides]``.

``main`` is a thin ``@hydra.main`` wrapper; ``train(cfg)`` does the work and is what tests and notebooks call.
Only OmegaConf/Hydra are imported at module level: the config is validated (:mod:`nag.config.schema`) before torch and
Lightning load, so a mistyped value is reported in a second or two, not after the imports.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import hydra
from annotated_types import Ge
from omegaconf import DictConfig, open_dict

import nag  # noqa: F401  (registers the nag.* OmegaConf resolvers)
from nag.config.console import print_help_and_exit, quiet_third_party, single_lightning_log
from nag.config.errors import ConfigError, DivergenceError, reported_as_exit
from nag.config.params import Count, Excludes
from nag.config.schema import validate
from nag.runs.resume import checkpoint_to_continue, expand_resume
from nag.runs.run_dir import RunDir
from nag.runs.sweep import in_multirun, optimized, run_job
from nag.training.build import build_data_and_trainer, build_model

log = logging.getLogger(__name__)


@dataclass
class TrainKeys:
    """The keys of ``conf/train.yaml``'s root, declared (checked at composition by :mod:`nag.config.schema`)."""

    seed: int | None
    test: bool
    ckpt_path: str | None
    resume: str | None


@dataclass
class TrainerKeys:
    """What nag checks of the arguments it passes to Lightning's ``Trainer`` (``conf/trainer``)."""

    max_epochs: Annotated[
        int, Ge(-1), Excludes((0,), "trains nothing: give at least 1 epoch (or -1 with trainer.max_steps > 0)")
    ]
    max_steps: Annotated[int, Ge(-1)]
    log_every_n_steps: Count

    @staticmethod
    def checks(get: Callable[[str], Any]) -> list[str]:
        epochs, steps = get("trainer.max_epochs"), get("trainer.max_steps")
        if epochs == -1 and not (isinstance(steps, int) and steps > 0):
            return [f"trainer.max_epochs=-1 trains nothing without trainer.max_steps > 0 (it is {steps})"]
        every, batches = get("trainer.check_val_every_n_epoch"), get("trainer.limit_val_batches")
        if str(get("model.scheduler._target_")).endswith(".ReduceLROnPlateau") and (
            (isinstance(every, int) and every != 1) or batches in (0, 0.0)
        ):
            # Lightning steps it once per epoch on val/loss and stops mid-run where an epoch has none.
            return [
                "model.scheduler=ReduceLROnPlateau follows val/loss every epoch: it needs "
                f"trainer.check_val_every_n_epoch=1 (it is {every}) and trainer.limit_val_batches > 0 (it is {batches})"
            ]
        return []


#: What :func:`nag.config.schema.validate` checks besides the components of a training config.
TRAIN_ROOTS = {"": TrainKeys, "trainer": TrainerKeys}


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the model described by ``cfg``; return the final metrics.

    The metrics (the trainer's last logged values, plus ``test/*`` when ``cfg.test``) are also written to
    ``<paths.output_dir>/metrics.json``. Everything the user can get wrong is checked before any data is built:
    the config's types and ranges, the checkpoint to continue from, the split sizes.
    """
    validate(cfg, TRAIN_ROOTS)
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    single_lightning_log()

    from nag.runs.checkpoint_file import check_optimizer_state, read_checkpoint
    from nag.runs.resume import check_same_model, continue_logging
    from nag.training.loading import check_hparams

    _check_launcher(cfg)
    ckpt_path = checkpoint_to_continue(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)

    model = build_model(cfg)
    if ckpt_path:
        ckpt = read_checkpoint(ckpt_path)
        check_hparams(ckpt["hyper_parameters"], ckpt_path)  # named code is refused, not compared
        check_same_model(ckpt["hyper_parameters"], dict(model.hparams), ckpt_path)
        model.load_weights(ckpt["state_dict"], ckpt_path)
        built = model.configure_optimizers()  # fresh: what training would go on with, to compare the stored with
        optimizer, scheduler = (
            (built["optimizer"], built["lr_scheduler"]["scheduler"]) if isinstance(built, dict) else (built, None)
        )
        check_optimizer_state(ckpt, optimizer, ckpt_path, scheduler=scheduler)
        if cfg.get("resume"):
            with open_dict(cfg):
                continue_logging(cfg, int(ckpt.get("global_step", 0)))
    datamodule, trainer = build_data_and_trainer(cfg, model)

    log.info("prior: %s | matching: %s", model.prior, model.matching)
    started = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except DivergenceError as e:
        last = RunDir(Path(cfg.paths.output_dir)).last_ckpt
        kept = f" The last good checkpoint is {last}." if last else " No checkpoint had been written yet."
        error = DivergenceError(f"{e}{kept}")
        error.global_step = trainer.global_step  # type: ignore[attr-defined]  (for the failure record)
        raise error from None
    except Exception as e:
        e.global_step = trainer.global_step  # type: ignore[attr-defined]
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    # Wall time of this command's fit (a continued run: since it was continued), for the benchmark's table.
    metrics["time/train_seconds"] = time.perf_counter() - started

    if cfg.get("test") and not trainer.fast_dev_run:
        best = next(
            (
                c.best_model_path
                for c in trainer.callbacks
                if isinstance(c, ModelCheckpoint) and _in_folder(c.best_model_path, c.dirpath)
            ),
            "",
        )
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    if trainer.is_global_zero:
        RunDir(Path(cfg.paths.output_dir)).write_metrics(metrics)
        log.info("metrics: %s", {k: round(v, 5) for k, v in sorted(metrics.items())})
    return metrics


def _in_folder(path: str | None, folder: str | None) -> bool:
    """Whether ``path`` is a file directly in ``folder``. Lightning restores a ``ModelCheckpoint``'s
    ``best_model_path`` from any checkpoint continued from, even one of another run dir: testing "the best"
    must never load a file the checkpoint named elsewhere."""
    return bool(path and folder) and Path(path).resolve().parent == Path(folder).resolve()  # type: ignore[arg-type]


def _check_launcher(cfg: DictConfig) -> None:
    """Refuse a DDP job that Lightning would have to launch itself inside a sweep: its launcher re-runs the
    command line, which for ``-m`` is the whole sweep. On SLURM the processes come from SLURM instead."""
    trainer = cfg.get("trainer") or {}
    strategy, devices = str(trainer.get("strategy", "auto")), trainer.get("devices", 1)
    if in_multirun() and strategy.startswith("ddp") and devices != 1 and "SLURM_NTASKS" not in os.environ:
        raise ConfigError(
            f"trainer.strategy={strategy} with trainer.devices={devices} inside a sweep (-m) needs SLURM: Lightning's "
            "own DDP launcher re-runs the command line, which here is the whole sweep. Send the sweep to SLURM with "
            "hydra/launcher=slurm_ddp, or run the DDP jobs one at a time without -m."
        )


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    return run_job(cfg, lambda: optimized(train(cfg), cfg.get("optimized_metric")))


ABOUT = """python -m nag.train [group=option ...] [key=value ...]

Trains an autoencoder whose codes are pulled onto a chosen prior by a matching loss (loss = recon + λ·matching),
then tests its best checkpoint. Writes checkpoints, TensorBoard figures and metrics.json into outputs/<date>/<time>
(multirun/<date>/<time>/<job> with -m).

Common commands:
  python -m nag.train experiment=quickstart                     # 2 minutes on a laptop CPU, synthetic faces
  python -m nag.train prior=normal_mean-3 data.root=/data/celeba  # the report's model on CelebA, matched to N(-3, 2)
  python -m nag.train -m experiment=quickstart prior.mean=-3,0,3  # a sweep; then python -m nag.compare <sweep dir>
  python -m nag.train resume=outputs/<date>/<time>              # continue a run that stopped"""


def main() -> None:
    """``python -m nag.train``: ``resume=<run dir>`` is expanded into that run's own command first."""
    print_help_and_exit(sys.argv[1:], "train", ABOUT)
    quiet_third_party()
    with reported_as_exit():
        sys.argv[1:] = expand_resume(sys.argv[1:])
    _main()


class _CallableModule(types.ModuleType):
    """``nag.train`` is this module (``python -m nag.train``) and the public ``nag.train(overrides, run_dir=None)``
    (:func:`nag.analysis.runs.train_run`): once the module is imported, ``nag.train`` names it, so it answers calls."""

    def __call__(self, overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Any:
        from nag.analysis.runs import train_run

        return train_run(overrides, run_dir)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    main()

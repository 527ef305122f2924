"""Jobs that fail cleanly: a failure record in the job dir, and a sweep that goes on.

In a single run a :class:`~nag.config.errors.UserInputError` ends the program with its message (exit status 1) and a
bug keeps its traceback. In a multirun (``-m``) either one is recorded in ``<job dir>/failure.json`` (the
message, its type and the training step reached) and logged, and Hydra goes on with the next job; at the end
:class:`SweepSummary` prints one line per job and exits non-zero if any failed.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from nag.config.console import escape_logs
from nag.config.errors import UserInputError, checked, fail_closed
from nag.config.text import printable
from nag.runs.continuation import CONTINUE, FINISHED, NEW, JobPlan, check_sweep_dir, plan_job
from nag.runs.discovery import discover
from nag.runs.run_dir import RunDir

log = logging.getLogger(__name__)


def global_rank() -> int:
    """This process's rank in a distributed run (0 otherwise), from the variables the launchers set."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def write_failure(out_dir: Path, error: BaseException) -> None:
    """``<out_dir>/failure.json``: what went wrong and how far training got (written by rank 0 only)."""
    if global_rank() == 0:
        RunDir(out_dir).write_failure(error)


def _failed_value(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """What a failed job returns to a sweeper: NaN (Optuna marks the trial failed) or nothing."""
    keys = cfg.get("optimized_metric")
    if keys is None:
        return None
    return math.nan if isinstance(keys, str) else tuple(math.nan for _ in keys)


def _continued(cfg: DictConfig, out: Path) -> JobPlan | None:
    """In a sweep: what this job does, given what its dir holds from an earlier run of the same sweep
    (:mod:`nag.runs.continuation`); a job that continues gets ``resume=<its dir>``."""
    if not in_multirun():
        return None
    overrides = [str(o) for o in HydraConfig.get().overrides.task]
    plan = plan_job(out, overrides, write=global_rank() == 0)
    if plan.why != NEW:
        log.info("job %s: %s", out.name, plan.why)
    if plan.action == CONTINUE:
        with open_dict(cfg):
            cfg.resume = str(out)
    return plan


def optimized(metrics: dict[str, float], keys: str | list[str] | None) -> float | tuple[float, ...] | None:
    """What a hyper-parameter sweeper (Optuna) optimises: one metric, or a tuple for a multi-objective search."""
    if keys is None:
        return None
    names = [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in names if k not in metrics]
    if missing:
        raise UserInputError(
            f"optimized_metric names {missing}, which the run did not log; it logged {sorted(metrics)}."
        )
    values = tuple(metrics[k] for k in names)
    return values[0] if isinstance(keys, str) else values


def _stored_result(cfg: DictConfig, out: Path) -> Any:
    """What a job finished earlier returns to the sweeper: its optimised metric(s) from its ``metrics.json``."""
    return optimized(RunDir(out).metrics or {}, cfg.get("optimized_metric"))


def run_job(cfg: DictConfig, job: Callable[[], Any]) -> Any:
    """Run one Hydra job's work with the failure policy above; in a sweep dir that is continued, a finished job
    is skipped and an interrupted one continues from its checkpoint."""
    out = Path(cfg.paths.output_dir)
    escape_logs()
    try:
        plan = _continued(cfg, out)
    except Exception as e:  # another job's dir, a damaged record, a check that broke: the sweep stops, nothing recorded
        raise SystemExit(f"error: {fail_closed(f'job dir {out}', e)}") from None
    # A finished run that a command continues (resume=<its dir>) keeps its record when the command fails or is
    # refused: a wrong override typed on resume must not turn a finished run into a "failed" one.
    finished = bool(cfg.get("resume")) and RunDir(out).status == "ok"
    record = (lambda e: None) if finished else (lambda e: write_failure(out, e))
    try:
        if plan is not None and plan.action == FINISHED:
            return _stored_result(cfg, out)
        result = job()
    except UserInputError as e:
        record(e)
        if in_multirun():
            log.error("job failed: %s", e)
            return _failed_value(cfg)
        raise SystemExit(f"error: {e}") from None
    except Exception as e:
        record(e)
        if in_multirun():
            log.exception("job failed with an unexpected error (a bug: please report it)")
            return _failed_value(cfg)
        raise
    if global_rank() == 0:
        RunDir(out).clear_failure()  # e.g. a failed run resumed successfully
    return result


class ClosedCallback(Callback):
    """A Hydra callback whose hooks fail closed. Hydra turns *any* exception a callback raises into a warning and
    goes on (``hydra._internal.callbacks.Callbacks._notify``), so a check that raised the wrong kind of exception
    would be skipped and the sweep run unchecked; here every ``on_*`` hook of a subclass stops the command
    instead, with one message (``SystemExit`` is not an ``Exception``: Hydra lets it through)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, hook in list(vars(cls).items()):
            if name.startswith("on_") and callable(hook):
                setattr(cls, name, _stopping(hook, f"{cls.__name__}.{name}"))


def _stopping(hook: Callable[..., Any], where: str) -> Callable[..., Any]:
    @functools.wraps(hook)
    def run(self: Any, config: DictConfig, **kwargs: Any) -> Any:
        try:
            return hook(self, config, **kwargs)
        except Exception as e:  # a refusal, or a check that broke: either way the command stops here
            escape_logs()
            raise SystemExit(f"error: {fail_closed(where, e)}") from None

    return run


class SweepSummary(ClosedCallback):
    """Hydra callback: before a multirun, the checks of a sweep dir that is continued (and the Optuna study's
    continuation); after it, one line per job (ok / failed and why) and exit status 1 if any failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from nag.runs.continuation import continue_study

        escape_logs()
        sweep = Path(config.hydra.sweep.dir)
        if not os.path.lexists(sweep):
            sweep.mkdir(parents=True)  # given on the command line: the study file is made before any job dir
        with checked(f"hydra.sweep.dir={sweep}"):
            check_sweep_dir(sweep)
            if any(sweep.iterdir()):
                continue_study(config)
                log.info("continuing the sweep in %s: finished jobs are kept, interrupted ones continue", sweep)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs = discover(sweep) if sweep.is_dir() else []
        if not jobs:
            return
        lines, failed = [], 0
        for job in jobs:
            status, reason = job.status, job.reason
            failed += status != "ok"
            shown = printable(f"{job.path.name:>4}  {status:<10} {job.label()}{'  — ' + reason if reason else ''}")
            lines.append(f"  {shown}")
        head = f"sweep {printable(str(sweep))}: {len(jobs) - failed} of {len(jobs)} job(s) ok"
        print("\n".join([head, *lines]), flush=True)
        if failed:
            raise SystemExit(1)

"""A sweep killed half-way continues: rerun the same ``-m`` command with ``hydra.sweep.dir=<the killed sweep>``.

Each job of a sweep writes ``job.json`` (its overrides and the ``.hydra`` files Hydra wrote for it) when it starts,
and adds each later start to its ``history`` (what was done and why). When a job starts in a dir that already
holds one, the record says what happened there before:

- the same overrides and a ``metrics.json`` (no failure record): the job **finished**; it is skipped and its results
  are kept (the sweeper gets its stored metrics);
- the same overrides, not finished, with ``checkpoints/last.ckpt``: it is **continued in place** from that
  checkpoint (as ``resume=`` would: same run dir, same TensorBoard run);
- the same overrides and no checkpoint: it stopped before its first one and **starts again**;
- other overrides: the command changed (values inserted in the middle of a sweep renumber its jobs). The job's
  ``.hydra`` files are put back from the record and the sweep stops, naming both, before anything else is written.

A dir holding checkpoints but no record (made by something else) is refused in the same way. The killed sweep
is checked before any job runs (:func:`check_sweep_dir`, from :class:`~nag.runs.sweep.SweepSummary`): no
symbolic link anywhere below it, since Hydra and Lightning write into its job dirs following links.

With ``hparams_search=optuna`` the study lives in ``<sweep dir>/optuna.db`` (SQLite) and :func:`continue_study`
prepares it before the sweeper starts: finished trials (complete, pruned, failed) are kept and count towards
``n_trials``, so only the rest run; a trial the kill interrupted is asked again first, with its parameters, and
mapped back to its own job dir (``nag.sweep_subdir``), where it continues from its ``last.ckpt`` like any job.
lightning-hydra-template answers "not possible" to this; Hydra itself has no notion of a finished job.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nag.config.errors import UserInputError
from nag.config.text import first_line, quote
from nag.io.files import UnsafeFileError, is_real_dir, is_regular_file, load_json, read_text, strays_shown
from nag.io.output import atomic_file, write_json_atomic
from nag.runs.run_dir import CHECKPOINTS, CONFIG, HYDRA, JOB, OVERRIDES, RunDir

log = logging.getLogger(__name__)

#: What a job of a continued sweep does (:func:`plan_job`).
FINISHED, CONTINUE, START = "finished", "continue", "start"
#: Why a job starts when its dir held nothing of it (not worth a log line).
NEW = "a new job"
#: The most entries a job record's history keeps (the newest): the record is read back under a size limit.
HISTORY = 100


class SweepChangedError(UserInputError):
    """A job dir of the sweep dir holds another job: the sweep stops (it is not one job's failure)."""


@dataclass(frozen=True)
class JobPlan:
    """What to do with one job of a (possibly continued) sweep, and why (for the log)."""

    action: str  # FINISHED, CONTINUE or START
    why: str
    last_ckpt: Path | None = None


def check_sweep_dir(sweep: Path) -> None:
    """Before a sweep writes into an existing sweep dir: nothing below it but regular files and folders (Hydra
    writes each job's ``.hydra`` and log, Lightning its checkpoints and events, following links and blocking on
    named pipes), every folder readable (a walk that cannot look is a refusal), and each job dir a folder."""
    if os.path.islink(sweep) or not is_real_dir(sweep):
        raise UnsafeFileError(f"hydra.sweep.dir={sweep} is not a folder (a link or a file); give the sweep dir itself.")
    shown = strays_shown(sweep)
    if shown:
        raise UnsafeFileError(
            f"hydra.sweep.dir={sweep} holds symbolic links or other files that are not regular ({shown}); "
            "continuing the sweep writes into its job dirs and would write through a link or block on a named "
            "pipe. nag makes only regular files and folders there: remove them, or continue a copy made with cp -rL."
        )
    jobs = [p.name for p in sweep.iterdir() if p.name.isdigit() and not is_real_dir(p)]
    if jobs:
        raise UnsafeFileError(
            f"hydra.sweep.dir={sweep}: {', '.join(sorted(jobs)[:3])} should be job dirs but are files; a sweep "
            "writes each job into the folder of its number. Move them away, or give a new hydra.sweep.dir."
        )


def _record(job: RunDir) -> dict[str, Any] | None:
    path = job / JOB
    if not os.path.lexists(path):
        return None
    data = load_json(path)
    if not (
        isinstance(data, dict)
        and isinstance(data.get("overrides"), list)
        and all(isinstance(o, str) for o in data["overrides"])
    ):
        raise UnsafeFileError(f"{path} is not a job record written by nag.train (no list of overrides).")
    history = data.setdefault("history", [])  # records written before the history existed have none
    if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
        raise UnsafeFileError(f"{path} is not a job record written by nag.train (its history is not a list).")
    return data


def _logged(job: RunDir, record: dict[str, Any], plan: JobPlan, write: bool) -> JobPlan:
    """``plan``, added to the job record's history (``write``: rank 0 only)."""
    if write:
        entry = {"action": plan.action, "why": plan.why, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(job / JOB, {**record, "history": [*record["history"], entry][-HISTORY:]})
    return plan


def _restore(job: RunDir, record: dict[str, Any]) -> None:
    """Put back the ``.hydra`` files Hydra has just overwritten with another job's."""
    for relative, key in ((CONFIG, "config"), (OVERRIDES, "overrides_file"), (HYDRA, "hydra_file")):
        if isinstance(record.get(key), str):
            with atomic_file(job / relative) as f:
                f.write(record[key])


def plan_job(out: Path, overrides: list[str], write: bool = True) -> JobPlan:
    """What a sweep job whose dir is ``out`` does (module docstring); writes the job record when it starts
    (``write``: rank 0 only). Called after Hydra wrote ``.hydra/`` for this job, before anything else.

    Raises:
        SweepChangedError: ``out`` holds another job, or checkpoints without a record.
    """
    job = RunDir(out)
    record = _record(job)
    if record is None:
        if os.path.lexists(job / CHECKPOINTS):
            raise SweepChangedError(
                f"{out} holds checkpoints but no {JOB} (it was not made by this version of nag.train's sweeps), so "
                "whether it is this job cannot be told: give a new hydra.sweep.dir, or move that dir away."
            )
        record = {
            "overrides": list(overrides),
            "config": read_text(out / CONFIG) if is_regular_file(out / CONFIG) else None,
            "overrides_file": read_text(out / OVERRIDES) if is_regular_file(out / OVERRIDES) else None,
            "hydra_file": read_text(out / HYDRA) if is_regular_file(out / HYDRA) else None,
            "history": [],
        }
        return _logged(job, record, JobPlan(START, NEW), write)
    if list(record["overrides"]) != list(overrides):
        if write:
            _restore(job, record)
        there = [o for o in record["overrides"] if o not in overrides] or ["(the same, in another order)"]
        here = [o for o in overrides if o not in record["overrides"]] or ["(the same, in another order)"]
        raise SweepChangedError(
            f"{out} holds the job with {' '.join(there)[:300]}, but this command's job {out.name} has "
            f"{' '.join(here)[:300]}: it is not the command that made the sweep (a changed value renumbers the "
            "jobs). Run that command to continue the sweep, or give a new hydra.sweep.dir. The job dir is as it was."
        )
    status = job.status
    if status == "ok":
        return _logged(
            job, record, JobPlan(FINISHED, "it finished in an earlier run of this sweep: its results are kept"), write
        )
    if status == "unreadable":
        raise SweepChangedError(f"{out} cannot be read ({job.reason}); move it away to run that job again.")
    last = job.last_ckpt
    if last is not None:
        was = "it failed" if status == "failed" else "it was stopped"
        return _logged(job, record, JobPlan(CONTINUE, f"{was}; continuing from {last}", last), write)
    return _logged(job, record, JobPlan(START, "it stopped before its first checkpoint: starting again"), write)


# --- Optuna -------------------------------------------------------------------------------------------------------


def _space(sweeper: Any) -> dict[str, Any]:
    """The distributions this command searches (``hydra.sweeper.params``), built as the sweeper builds them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    given = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides(given)
    return {
        o.get_key_element(): create_optuna_distribution_from_override(o) for o in overrides if o.is_sweep_override()
    }


def _checked_params(trial: Any, space: dict[str, Any], db: Path) -> dict[str, Any]:
    """The parameters a trial of the study file will be asked with (an interrupted one's, or a waiting one's fixed
    parameters): only keys this search searches, each inside the command's own distribution for it. The study
    file is untrusted; a value of the wrong type would fail deep inside Optuna."""
    given = {**dict(trial.system_attrs.get("fixed_params") or {}), **trial.params}
    for name, value in given.items():
        dist = space.get(name)
        try:
            inside = dist is not None and bool(dist._contains(dist.to_internal_repr(value)))
        except (TypeError, ValueError, AttributeError):
            inside = False
        if not inside:
            raise UserInputError(
                f"hydra.sweeper.storage: {db}: trial {trial.number} has {name}={quote(value)}, which "
                "this search does not search (or outside its range); move the file away to start "
                "the search again."
            )
    return dict(trial.params)


def continue_study(cfg: Any) -> None:
    """Prepare a persistent Optuna study before the sweeper opens it (module docstring): mark the trials the kill
    left running as failed and ask their parameters again first, lower ``n_trials`` by the trials already
    finished, and number the new jobs after the old ones. Nothing happens for a new study."""
    from omegaconf import open_dict, read_write

    sweeper = cfg.hydra.sweeper
    storage = sweeper.get("storage")
    if not storage or not str(storage).startswith("sqlite:///"):
        return
    db = Path(str(storage)[len("sqlite:///") :])
    if not os.path.lexists(db):
        return  # a new study
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not is_regular_file(db):
        raise UnsafeFileError(f"hydra.sweeper.storage: {db} is not a regular file; nag does not open it.")
    try:
        study = optuna.load_study(study_name=sweeper.study_name, storage=str(storage))
    except KeyError:  # another study name in the same file: a new study
        return
    except Exception as e:  # a damaged or foreign file: sqlite and SQLAlchemy raise many kinds
        raise UserInputError(
            f"hydra.sweeper.storage: {db} cannot be read as an Optuna study ({first_line(e) or type(e).__name__}); "
            "move it away to start the search again."
        ) from None
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    stale = [t for t in trials if t.state == TrialState.RUNNING]
    # A trial's job dir is its number, except a retried one's: it goes back to the dir of the trial it retries.
    # The sweeper asks the waiting trials first (ones enqueued by an earlier continuation, then these).
    dirs = {int(k): int(v) for k, v in dict(study.user_attrs.get("nag_job_dirs") or {}).items()}
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    retried = [dirs.get(t.number, t.number) for t in (*waiting, *stale)]
    first = len(trials)
    space = _space(sweeper)
    for t in waiting:  # asked first by the sweeper, as they stand: a planted one is refused like a stale one
        _checked_params(t, space, db)
    again = [_checked_params(t, space, db) for t in stale]  # all checked before the study is changed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # enqueue_trial, in 2.10
        for t, params in zip(stale, again, strict=True):  # the kill interrupted these: ask them again first
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(params)
    dirs.update({first + i: d for i, d in enumerate(retried[len(waiting) :])})  # the enqueued get the next numbers
    study.set_user_attr("nag_job_dirs", {str(k): v for k, v in dirs.items()})
    remaining = max(0, int(sweeper.n_trials) - len(done))
    log.info(
        "continuing the Optuna study %s in %s: %d trial(s) finished, %d interrupted (run again in their own "
        "dirs), %d to go",
        sweeper.study_name,
        db,
        len(done),
        len(stale),
        remaining,
    )
    # The launcher composes each job's config again from the command's overrides: the job dirs go in as one.
    # New trials: job num -> trial number first - len(waiting) + num (the waiting ones have numbers below first).
    shown = "".join(f"d{d}" for d in retried) or "d"
    subdir = f"${{nag.sweep_subdir:${{hydra.job.num}},{first - len(waiting)},{shown}}}"
    with read_write(cfg), open_dict(cfg):
        sweeper.n_trials = remaining
        cfg.hydra.sweep.subdir = subdir
        cfg.hydra.overrides.hydra.append(f"hydra.sweep.subdir='{subdir}'")

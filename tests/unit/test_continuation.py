"""What a job of a continued sweep does with what its dir holds (``nag.runs.continuation``), on crafted job dirs;
the killed sweeps themselves are in ``tests/e2e/test_sweep_continues.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nag.config.resolvers import sweep_subdir
from nag.io.files import UnsafeFileError
from nag.runs.continuation import (
    CONTINUE,
    FINISHED,
    HISTORY,
    START,
    SweepChangedError,
    check_sweep_dir,
    plan_job,
)

OVERRIDES = ["prior.mean=1", "trainer.max_epochs=2"]


def _job(tmp_path: Path, config: str = "prior:\n  mean: 1\n") -> Path:
    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(config)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in OVERRIDES))
    return job


def test_a_new_job_writes_its_record_and_then_is_known_by_it(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert plan_job(job, OVERRIDES).action == START
    record = json.loads((job / "job.json").read_text())
    assert record["overrides"] == OVERRIDES and record["config"] == "prior:\n  mean: 1\n"
    # Killed before its first checkpoint: started again.
    plan = plan_job(job, OVERRIDES)
    assert plan.action == START and "before its first checkpoint" in plan.why
    # With a checkpoint: continued from it; failed runs too.
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"x")
    plan = plan_job(job, OVERRIDES)
    assert plan.action == CONTINUE and plan.last_ckpt == job / "checkpoints" / "last.ckpt"
    assert plan.why == f"it was stopped; continuing from {job / 'checkpoints' / 'last.ckpt'}"
    (job / "failure.json").write_text(json.dumps({"status": "failed", "error": "node rebooted"}))
    assert plan_job(job, OVERRIDES).why.startswith("it failed; continuing")
    # Finished (metrics, no failure record): skipped, results kept.
    (job / "failure.json").unlink()
    (job / "metrics.json").write_text(json.dumps({"val/loss": 1.0}))
    plan = plan_job(job, OVERRIDES)
    assert plan.action == FINISHED and plan.why == "it finished in an earlier run of this sweep: its results are kept"
    # Each start is in the record's history, newest last; a rank that does not write leaves it as it is.
    history = json.loads((job / "job.json").read_text())["history"]
    assert [h["action"] for h in history] == [START, START, CONTINUE, CONTINUE, FINISHED]
    assert history[3]["why"].startswith("it failed") and history[0]["why"] == "a new job"
    plan_job(job, OVERRIDES, write=False)
    assert json.loads((job / "job.json").read_text())["history"] == history
    # A job dir whose files cannot be read is not taken for stopped: refused, named.
    (job / "metrics.json").write_text("[1, 2]")
    with pytest.raises(SweepChangedError, match=r"cannot be read \(.*not a mapping.*\); move it away"):
        plan_job(job, OVERRIDES, write=False)


def test_the_history_keeps_the_newest_entries_and_an_old_record_without_one_gets_one(tmp_path: Path) -> None:
    job = _job(tmp_path)
    (job / "job.json").write_text(json.dumps({"overrides": OVERRIDES}))  # written before the history existed
    plan_job(job, OVERRIDES)
    assert [h["action"] for h in json.loads((job / "job.json").read_text())["history"]] == [START]
    record = json.loads((job / "job.json").read_text())
    record["history"] = [{"action": "start", "why": str(i)} for i in range(HISTORY)]
    (job / "job.json").write_text(json.dumps(record))
    plan_job(job, OVERRIDES)
    history = json.loads((job / "job.json").read_text())["history"]
    assert len(history) == HISTORY and history[0]["why"] == "1" and history[-1]["action"] == START


def test_another_job_in_the_dir_is_refused_and_its_hydra_files_are_put_back(tmp_path: Path) -> None:
    job = _job(tmp_path)
    (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    num: 0\n")
    plan_job(job, OVERRIDES)
    # Hydra has just written the new job's files over the old ones:
    (job / ".hydra" / "config.yaml").write_text("prior:\n  mean: 5\n")
    (job / ".hydra" / "overrides.yaml").write_text("- prior.mean=5\n- trainer.max_epochs=2\n")
    (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    num: 7\n")
    with pytest.raises(
        SweepChangedError, match="holds the job with prior.mean=1, but this command's job 0 has prior.mean=5"
    ):
        plan_job(job, ["prior.mean=5", "trainer.max_epochs=2"])
    assert (job / ".hydra" / "config.yaml").read_text() == "prior:\n  mean: 1\n"
    assert (job / ".hydra" / "overrides.yaml").read_text() == "- prior.mean=1\n- trainer.max_epochs=2\n"
    assert (job / ".hydra" / "hydra.yaml").read_text() == "hydra:\n  job:\n    num: 0\n"


def test_checkpoints_without_a_record_are_not_taken_for_this_job(tmp_path: Path) -> None:
    job = _job(tmp_path)
    (job / "checkpoints").mkdir()
    with pytest.raises(SweepChangedError, match="holds checkpoints but no job.json"):
        plan_job(job, OVERRIDES)
    assert not (job / "job.json").exists()


@pytest.mark.parametrize(
    "record",
    [
        '{"overrides": "prior.mean=1"}',
        "[1, 2]",
        '{"overrides": [1]}',
        "{",
        '{"overrides": ["prior.mean=1", "trainer.max_epochs=2"], "history": "start"}',
        '{"overrides": ["prior.mean=1", "trainer.max_epochs=2"], "history": [1]}',
    ],
)
def test_a_damaged_record_is_named(tmp_path: Path, record: str) -> None:
    job = _job(tmp_path)
    (job / "job.json").write_text(record)
    with pytest.raises(UnsafeFileError, match="job.json"):
        plan_job(job, OVERRIDES)


def test_a_sweep_dir_with_a_link_below_it_is_refused(tmp_path: Path) -> None:
    job = _job(tmp_path)
    check_sweep_dir(job.parent)
    os.symlink(tmp_path / "elsewhere", job / "train.log")
    with pytest.raises(
        UnsafeFileError, match=r"holds symbolic links or other files that are not regular \(0/train.log ->"
    ):
        check_sweep_dir(job.parent)
    os.symlink(job.parent, tmp_path / "link")
    with pytest.raises(UnsafeFileError, match="is not a folder"):
        check_sweep_dir(tmp_path / "link")


@pytest.mark.parametrize("where", ["0/train.log", "0/.hydra/config.yaml", "multirun.yaml"])
def test_a_named_pipe_in_a_sweep_dir_is_refused_like_a_link(tmp_path: Path, where: str) -> None:
    """Hydra's writers open these files and would block on a FIFO for ever."""
    job = _job(tmp_path)
    (job.parent / where).unlink(missing_ok=True)
    os.mkfifo(job.parent / where)
    with pytest.raises(UnsafeFileError, match=rf"\({where} \(a named pipe\)\)"):
        check_sweep_dir(job.parent)


def test_a_job_dir_that_is_a_file_is_refused_before_hydra_writes_into_it(tmp_path: Path) -> None:
    job = _job(tmp_path)
    (job.parent / "1").write_text("not a folder")
    with pytest.raises(UnsafeFileError, match=r"sweep: 1 should be job dirs but are files"):
        check_sweep_dir(job.parent)
    for name in ("3", "2", "10", "4"):
        (job.parent / name).write_text("not a folder")
    with pytest.raises(UnsafeFileError, match=r"sweep: 1, 10, 2 should be job dirs but are files; a sweep"):
        check_sweep_dir(job.parent)  # the first three names, sorted as text, joined with commas


def test_a_sweep_dir_that_is_a_file_is_refused_as_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "sweep").write_text("a file")
    with pytest.raises(UnsafeFileError, match=r"sweep is not a folder \(a link or a file\); give the sweep dir"):
        check_sweep_dir(tmp_path / "sweep")


def test_sweep_subdir_sends_retried_trials_home_and_numbers_new_ones_as_their_trials() -> None:
    # Trials 0..4 so far; trials 1 and 3 were interrupted: asked again first, as jobs 0 and 1.
    assert [sweep_subdir(n, 5, "d1d3") for n in range(4)] == ["1", "3", "7", "8"]
    assert [sweep_subdir(n, 5, "d") for n in range(2)] == ["5", "6"]


def _search_cfg(storage: str, sweep: Path) -> object:
    """The Hydra config a continued search of matching.weight in [0.01, 100] (log) gives continue_study."""
    from omegaconf import OmegaConf

    sweeper = {
        "storage": storage,
        "study_name": "s",
        "n_trials": 5,
        "params": {"matching.weight": "tag(log, interval(0.01, 100))"},
    }
    sweep_dir = {"dir": str(sweep), "subdir": "${hydra.job.num}"}
    return OmegaConf.create({"hydra": {"sweeper": sweeper, "sweep": sweep_dir, "overrides": {"hydra": []}}})


def test_a_planted_study_cannot_choose_what_is_asked_again(tmp_path: Path) -> None:
    """The study file of a killed search is untrusted: an interrupted trial is asked again only with keys the
    command searches, inside their ranges."""
    optuna = pytest.importorskip("optuna")

    from nag.config.errors import UserInputError
    from nag.runs.continuation import continue_study

    sweep = tmp_path / "search"
    sweep.mkdir()
    storage = f"sqlite:///{sweep}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage)
    study.ask({"matching.weight": optuna.distributions.LogUniformDistribution(0.01, 100.0)})  # RUNNING
    planted = study.ask({"trainer.max_epochs": optuna.distributions.IntUniformDistribution(1, 10_000)})
    assert planted.number == 1

    def cfg() -> object:
        return _search_cfg(storage, sweep)

    with pytest.raises(
        UserInputError, match=r"storage: .*/search/optuna.db: trial 1 has trainer.max_epochs=\d+, which this"
    ):
        continue_study(cfg())
    # Without the planted trial: the interrupted one is asked again first, in its own dir, and 5 trials to go.
    study.tell(1, state=optuna.trial.TrialState.COMPLETE, values=[0.0])  # finished: not asked again
    c = cfg()
    continue_study(c)
    assert c.hydra.sweeper.n_trials == 4
    # (as plain text: OmegaConf's own == takes a ListConfig [None] to equal a list of one interpolation string)
    assert _unresolved(c.hydra.overrides, "hydra") == ["hydra.sweep.subdir='${nag.sweep_subdir:${hydra.job.num},2,d0}'"]
    assert _unresolved(c.hydra.sweep, "subdir") == "${nag.sweep_subdir:${hydra.job.num},2,d0}"
    states = [t.state.name for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == ["FAIL", "COMPLETE", "WAITING"]


@pytest.mark.parametrize("value", ["x", 500.0, 0.001])
def test_a_planted_waiting_trial_or_a_value_outside_the_range_is_refused(tmp_path: Path, value: object) -> None:
    """The sweeper asks waiting trials first, with their fixed parameters as stored: a string would fail inside
    Optuna (TypeError), a value outside the command's range would train a setting nobody searched."""
    optuna = pytest.importorskip("optuna")

    from nag.config.errors import UserInputError
    from nag.runs.continuation import continue_study

    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"matching.weight": 1.0})  # inside: fine on its own
    cfg = _search_cfg(storage, tmp_path)
    continue_study(cfg.copy())
    study.enqueue_trial({"matching.weight": value})
    with pytest.raises(
        UserInputError, match=r"storage: .*/optuna.db: trial 1 has matching.weight=.*which this search does not search"
    ):
        continue_study(cfg.copy())


def test_resuming_compares_models_with_an_older_checkpoints_missing_keys_as_their_defaults() -> None:
    from nag.config.errors import ConfigError
    from nag.runs.resume import check_same_model

    model = {"latent_dim": 8, "prior": {"mean": 0.0}, "scheduler": None, "recon_emphasis": 0.0}
    model |= {"recon_ssim": 0.0, "recon_frequency": 0.0}
    older = {
        k: v for k, v in model.items() if k not in ("scheduler", "recon_emphasis", "recon_ssim", "recon_frequency")
    }
    check_same_model(older, model, "last.ckpt")  # trained with the plain MSE, before the key existed
    with pytest.raises(
        ConfigError,
        match=r"^last\.ckpt was trained with other settings than this command asks for "
        r"\(model\.recon_emphasis: 0\.0 -> 3\.0\)",
    ):
        check_same_model(older, {**model, "recon_emphasis": 3.0}, "last.ckpt")


def test_every_difference_is_named_by_its_config_key_six_at_most() -> None:
    """A key only the command has counts (the union of both sides' keys); the message names each by the key a user
    types, separated by '; ', six at most and '...' only when there are more."""
    from nag.config.errors import ConfigError
    from nag.runs.resume import check_same_model, config_key
    from nag.runs.trusted import OPTIONAL_DEFAULTS

    assert [config_key(k) for k in ("prior.mean", "matching.weight", "latent_dim", "optimizer.lr")] == [
        "prior.mean",
        "matching.weight",
        "model.latent_dim",
        "model.optimizer.lr",
    ]
    stored = {**OPTIONAL_DEFAULTS, "latent_dim": 8, "prior": {"mean": 0.0}}
    with pytest.raises(ConfigError, match=r"\(model\.width: None -> 4\)\. Continuing"):
        check_same_model(stored, {**stored, "width": 4}, "last.ckpt")
    six = {f"k{i}": i for i in range(6)}
    with pytest.raises(ConfigError) as err:
        check_same_model(stored, {**stored, **six}, "last.ckpt")
    assert "(model.k0: None -> 0; model.k1: None -> 1; " in str(err.value)
    assert "model.k5: None -> 5). Continuing" in str(err.value), "six shown, no '...'"
    with pytest.raises(ConfigError) as err:
        check_same_model(stored, {**stored, **six, "k6": 6}, "last.ckpt")
    assert "model.k5: None -> 5 ...). Continuing" in str(err.value) and "k6" not in str(err.value)


def test_the_record_keeps_the_hydra_files_that_exist_and_dates_each_start_in_utc(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- prior.mean=1\n")
    plan_job(job, ["prior.mean=1"])  # no config.yaml, no hydra.yaml: recorded as absent, not an error
    record = json.loads((job / "job.json").read_text())
    assert (record["config"], record["overrides_file"], record["hydra_file"]) == (None, "- prior.mean=1\n", None)
    (at,) = [h["at"] for h in record["history"]]
    assert datetime.fromisoformat(at).utcoffset() == timedelta(0), "an aware UTC time"


def _unresolved(node: object, key: str) -> object:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=False)[key]


def test_a_search_killed_twice_asks_the_same_trial_again_in_its_first_dir(tmp_path: Path) -> None:
    """Kill 1: trial 0 (job dir 0) was running: it fails and its parameters are enqueued as trial 2, whose job dir
    is 0. Kill 2, while trial 2 ran: it is enqueued again as trial 3, still in job dir 0 (not 2); a search whose
    n_trials are all finished has none to go."""
    optuna = pytest.importorskip("optuna")
    from optuna.trial import TrialState

    from nag.runs.continuation import continue_study

    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage)
    weight = study.ask({"matching.weight": optuna.distributions.LogUniformDistribution(0.01, 100.0)})
    study.tell(study.ask({"matching.weight": optuna.distributions.LogUniformDistribution(0.01, 100.0)}), 0.5)
    first = _search_cfg(storage, tmp_path)
    continue_study(first)
    subdir = "${nag.sweep_subdir:${hydra.job.num},2,d0}"
    assert (_unresolved(first.hydra.sweep, "subdir"), first.hydra.sweeper.n_trials) == (subdir, 4)
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.WAITING]
    assert study.user_attrs["nag_job_dirs"] == {"2": 0}
    before_any_job = _search_cfg(storage, tmp_path)  # killed again before the sweeper asked the waiting trial
    continue_study(before_any_job)
    assert _unresolved(before_any_job.hydra.sweep, "subdir") == subdir  # new jobs still start after trial 2
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["nag_job_dirs"] == {"2": 0}
    again = study.ask()  # the sweeper asks the waiting trial first: trial 2, with trial 0's parameters
    asked = again.suggest_float("matching.weight", 0.01, 100.0, log=True)  # its fixed value, as the sweeper gets it
    assert again.number == 2 and asked == weight.params["matching.weight"]
    second = _search_cfg(storage, tmp_path)  # killed again while trial 2 ran
    continue_study(second)
    assert _unresolved(second.hydra.sweep, "subdir") == "${nag.sweep_subdir:${hydra.job.num},3,d0}"
    assert _unresolved(second.hydra.overrides, "hydra") == [
        f"hydra.sweep.subdir='{_unresolved(second.hydra.sweep, 'subdir')}'"
    ]
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs["nag_job_dirs"] == {"2": 0, "3": 0} and study.trials[3].state == TrialState.WAITING
    assert second.hydra.sweeper.n_trials == 5 - 2  # trial 0 failed and 1 finished; 2 runs again
    finished = _search_cfg(storage, tmp_path)
    finished.hydra.sweeper.n_trials = 1
    study.tell(study.ask(), 0.25)  # trial 3 finishes
    continue_study(finished)
    assert finished.hydra.sweeper.n_trials == 0
    assert _unresolved(finished.hydra.sweep, "subdir") == "${nag.sweep_subdir:${hydra.job.num},4,d}"  # none retried


def test_two_interrupted_trials_go_back_to_their_own_dirs_and_another_study_in_the_file_is_left_alone(
    tmp_path: Path,
) -> None:
    optuna = pytest.importorskip("optuna")

    from nag.runs.continuation import continue_study

    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name="other", storage=storage).ask()  # a second study in the same file
    study = optuna.create_study(study_name="s", storage=storage)
    for _ in range(2):
        study.ask({"matching.weight": optuna.distributions.LogUniformDistribution(0.01, 100.0)})  # both killed
    cfg = _search_cfg(storage, tmp_path)
    continue_study(cfg)
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs["nag_job_dirs"] == {"2": 0, "3": 1}
    assert _unresolved(cfg.hydra.sweep, "subdir") == "${nag.sweep_subdir:${hydra.job.num},2,d0d1}"
    assert len(optuna.load_study(study_name="other", storage=storage).trials) == 1


@pytest.mark.parametrize(
    ("finished", "resume", "recorded"),
    [(True, True, False), (False, True, True), (True, False, True), (False, False, True)],
    ids=["finished-resumed", "interrupted-resumed", "finished-not-resumed", "new"],
)
def test_a_refused_command_on_a_finished_run_leaves_its_record(
    tmp_path: Path, finished: bool, resume: bool, recorded: bool
) -> None:
    """`resume=<a finished run> prior.mean=5` is refused; the run must still read as finished (ok), not failed."""
    from omegaconf import OmegaConf

    from nag.config.errors import UserInputError
    from nag.runs.run_dir import RunDir
    from nag.runs.sweep import run_job

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("data: {}\n")
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    if finished:
        (run / "metrics.json").write_text('{"val/recon": 0.1}')
    cfg = OmegaConf.create({"paths": {"output_dir": str(run)}, "resume": str(run) if resume else None})

    def refused() -> None:
        raise UserInputError("prior.mean: 0.0 -> 5 cannot change")

    with pytest.raises(SystemExit, match="prior.mean: 0.0 -> 5 cannot change"):
        run_job(cfg, refused)
    assert (run / "failure.json").exists() == recorded
    assert RunDir(run).status == ("failed" if recorded else "ok")

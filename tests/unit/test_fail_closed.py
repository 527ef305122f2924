"""The trust boundary's mechanisms below the end-to-end tier: checks that fail closed (in Hydra's real callback
dispatcher, in the walker, as a normal user), text escaped where it leaves nag (messages, the log formatter,
markdown cells), stored-config references bounded, and what files claim checked before anything is allocated."""

from __future__ import annotations

import io
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from nag.config.console import EscapingFormatter, escape_logs
from nag.config.errors import ConfigError, UserInputError, checked
from nag.config.keys import leaves
from nag.config.text import first_line, markdown_cell, one_line, printable, quote
from nag.io.files import UnsafeFileError, strays_below, walk
from nag.runs.stored_config import MAX_STEPS, StoredConfig, StoredConfigError
from tests.helpers import NORMAL_USER

# --- failing closed -----------------------------------------------------------------------------------------------


def test_every_hook_of_a_closed_hydra_callback_stops_the_command_and_nothing_else_is_wrapped() -> None:
    """Hydra turns a callback's exception into a warning; a ClosedCallback's ``on_*`` hooks raise SystemExit (which
    Hydra lets through) naming the hook; what is not a hook, or not callable, is left as it is."""
    from omegaconf import OmegaConf

    from nag.runs.sweep import ClosedCallback

    class Check(ClosedCallback):
        on_marker = "not callable"

        def on_job_start(self, config, **kwargs):
            raise ValueError("broke")

        def on_run_end(self, config, **kwargs):
            return config.answer

        def helper(self):
            raise ValueError("not a hook")

    cfg = OmegaConf.create({"answer": 42})
    with pytest.raises(
        SystemExit,
        match=r"^error: Check\.on_job_start: the safety check could not finish "
        r"\(ValueError: broke\)",
    ):
        Check().on_job_start(cfg)
    assert Check().on_run_end(cfg) == 42 and Check.on_run_end.__name__ == "on_run_end"
    with pytest.raises(ValueError, match="not a hook"):
        Check().helper()
    assert Check.on_marker == "not callable"


def _hydra_callbacks(sweep: Path, sweeper: dict | None = None):
    """Hydra's own dispatcher (the one that turns a callback's exception into a warning), with nag's callback."""
    from hydra._internal.callbacks import Callbacks

    cfg = OmegaConf.create(
        {
            "hydra": {
                "callbacks": {"sweep_summary": {"_target_": "nag.runs.sweep.SweepSummary"}},
                "sweep": {"dir": str(sweep), "subdir": "${hydra.job.num}"},
                "sweeper": sweeper or {},
                "overrides": {"hydra": []},
            }
        }
    )
    return Callbacks(cfg), cfg


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied"),
        KeyError("dirpath"),
        RecursionError(),
        ZeroDivisionError("x"),
        UserInputError("refused"),
    ],
)
def test_an_exception_of_any_type_in_the_sweep_check_stops_the_sweep(
    tmp_path: Path, monkeypatch, error: Exception
) -> None:
    """Through Hydra's real dispatcher: a check that breaks is a refusal, never a warning and an unchecked sweep."""
    import nag.runs.sweep

    def broken(sweep: Path) -> None:
        raise error

    monkeypatch.setattr(nag.runs.sweep, "check_sweep_dir", broken)
    callbacks, cfg = _hydra_callbacks(tmp_path / "sweep")
    with pytest.raises(SystemExit) as stop:
        callbacks.on_multirun_start(config=cfg)
    message = str(stop.value.code)
    assert message.startswith("error: ") and message.count("\n") == 0
    assert type(error).__name__ in message or "refused" in message


def test_a_planted_job_dir_map_in_a_study_stops_the_sweep(tmp_path: Path) -> None:
    """The issue's case: a study whose nag_job_dirs sends a trial to ../../home raises ValueError inside the
    continuation; Hydra would have warned and gone on."""
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "search"
    sweep.mkdir()
    storage = f"sqlite:///{sweep}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage)
    study.set_user_attr("nag_job_dirs", {"0": "../../home"})
    callbacks, cfg = _hydra_callbacks(
        sweep, {"storage": storage, "study_name": "s", "n_trials": 2, "params": {"matching.weight": "interval(0.1, 1)"}}
    )
    with pytest.raises(SystemExit, match=r"^error: .*could not finish \(ValueError"):
        callbacks.on_multirun_start(config=cfg)


def test_a_study_file_that_is_a_named_pipe_is_refused(tmp_path: Path) -> None:
    from nag.runs.continuation import continue_study

    os.mkfifo(tmp_path / "optuna.db")
    cfg = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {
                    "storage": f"sqlite:///{tmp_path}/optuna.db",
                    "study_name": "s",
                    "n_trials": 2,
                    "params": {},
                }
            }
        }
    )
    with pytest.raises(UnsafeFileError, match="optuna.db is not a regular file"):
        continue_study(cfg)


def test_checked_turns_any_error_into_a_refusal_naming_the_check() -> None:
    with (
        pytest.raises(UserInputError, match=r"^resume=x: the safety check could not finish \(KeyError: 'a'\)"),
        checked("resume=x"),
    ):
        {}["a"]  # noqa: B018
    with pytest.raises(ConfigError, match="^bad$"), checked("resume=x"):  # a refusal stays itself
        raise ConfigError("bad")


def test_the_walk_refuses_a_folder_it_cannot_look_into_as_a_normal_user(tmp_path: Path) -> None:
    """As root every folder can be looked into: the case runs with root's override capabilities dropped."""
    if os.geteuid() == 0 and not NORMAL_USER:
        pytest.fail("setpriv (util-linux) is needed to test permissions as a normal user")
    (tmp_path / "sweep" / "locked").mkdir(parents=True)
    (tmp_path / "sweep" / "locked" / "a.txt").write_text("x")
    os.chmod(tmp_path / "sweep" / "locked", 0o444)  # listed, not entered
    code = "import sys; from nag.io.files import walk; list(walk(__import__('pathlib').Path(sys.argv[1])))"
    try:
        r = subprocess.run(
            [*NORMAL_USER, sys.executable, "-c", code, str(tmp_path / "sweep")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.chmod(tmp_path / "sweep" / "locked", 0o755)
    assert r.returncode == 1 and "UnsafeFileError" in r.stderr, r.stderr[-2000:]
    assert f"{tmp_path}/sweep/locked/a.txt cannot be read (Permission denied)" in r.stderr


def test_strays_are_everything_but_regular_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ok.txt").write_text("x")
    os.mkfifo(tmp_path / "a" / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    found = {p.name: kind for p, kind in strays_below(tmp_path)}
    assert found == {"link": "a symbolic link", "pipe": "a named pipe"}
    assert [p.name for p, _ in walk(tmp_path)] == ["a", "link", "ok.txt", "pipe"]  # breadth first, not followed
    for i in range(5):
        (tmp_path / f"more{i}").symlink_to(tmp_path / "a")
    assert len(strays_below(tmp_path)) == 3 and len(strays_below(tmp_path, limit=6)) == 6, "three named at most"


def test_only_keys_whose_values_differ_between_runs_are_swept(tmp_path: Path) -> None:
    from nag.runs.discovery import swept_keys
    from nag.runs.run_dir import RunDir

    runs = []
    for i, overrides in enumerate([["prior.mean=1", "seed=0"], ["prior.mean=2", "seed=0"], ["seed=0", "x=1"]]):
        (tmp_path / str(i) / ".hydra").mkdir(parents=True)
        (tmp_path / str(i) / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        runs.append(RunDir(tmp_path / str(i)))
    assert swept_keys(runs) == ["prior.mean", "x"], "seed is the same everywhere; x is set by one run only"


# --- escaping -----------------------------------------------------------------------------------------------------

CRAFTED = "x\ntouch $HOME/PWNED\n#\x1b[2J\u202e"


def test_printable_escapes_what_would_start_a_line_or_move_the_cursor() -> None:
    assert printable(CRAFTED) == "x\\ntouch $HOME/PWNED\\n#\\x1b[2J\\u202e"
    assert printable(printable(CRAFTED)) == printable(CRAFTED)  # idempotent: messages nest
    assert printable("ünïcode ok") == "ünïcode ok"
    assert printable("a" * 500, 10) == "a" * 9 + "…"
    assert quote("a\nb") == "'a\\nb'" and quote(7.5) == "7.5" and len(quote("x" * 10_000)) <= 302


def test_a_user_input_error_shows_its_details_on_lines_of_their_own_and_nothing_else() -> None:
    e = ConfigError("invalid config:", details=["n=0 must be >= 1", CRAFTED])
    assert str(e).split("\n") == ["invalid config:", "  n=0 must be >= 1", "  " + printable(CRAFTED)]
    assert "\n" not in str(UserInputError(CRAFTED))


def test_the_log_formatter_keeps_every_record_on_one_line(tmp_path: Path) -> None:
    """A real FileHandler (what Hydra gives train.log): a message and an exception quoting a file each stay on
    the lines Python's traceback gives them; no line of the file starts with the planted command."""
    logger = logging.getLogger("nag.test_escape")
    handler = logging.FileHandler(tmp_path / "train.log")
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        escape_logs(logger)
        escape_logs(logger)  # idempotent: wrapped once
        assert isinstance(handler.formatter, EscapingFormatter)
        assert not isinstance(handler.formatter.inner, EscapingFormatter)
        logger.error("job failed: %s", CRAFTED)
        try:
            raise ValueError(CRAFTED)
        except ValueError:
            logger.exception("bug")
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert lines[0] == "[ERROR] job failed: " + printable(CRAFTED)
    assert not [ln for ln in lines if ln.startswith("touch") or ln.startswith("#")], lines
    assert lines[-1] == "ValueError: " + printable(CRAFTED)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("<script>alert(1)</script>", r"\<script\>alert(1)\</script\>"),
        ("[a](javascript:alert(1))", r"\[a\](javascript:alert(1))"),
        ("![x](http://evil/x.png)", r"!\[x\](http://evil/x.png)"),
        ("a | b\nc", r"a \| b c"),
        ("\u202eevil`code`", r"evil\`code\`"),
        ("back\\slash", r"back\\slash"),
        ("gmm_10 prior.mean=-3", "gmm_10 prior.mean=-3"),
    ],
)
def test_a_markdown_cell_renders_as_the_text_it_is(value: str, cell: str) -> None:
    assert markdown_cell(value) == cell
    assert one_line("a\n\tb \u202e c") == "a b c"


def test_an_errors_first_line_is_one_escaped_line() -> None:
    assert first_line(ValueError("  bad zip\x1b[31m\nline two")) == "bad zip [31m"
    assert first_line(ValueError("")) == "" and first_line(ValueError("x" * 500), 10) == "x" * 9 + "…"


def test_a_config_trees_leaves_have_dotted_keys() -> None:
    tree = {"model": {"encoder": {"channels": [32, 64], "k": 3}}, "prior": {"mean": -3}, "empty": {}}
    assert leaves(tree) == {
        "model.encoder.channels[0]": 32,
        "model.encoder.channels[1]": 64,
        "model.encoder.k": 3,
        "prior.mean": -3,
    }
    assert leaves(OmegaConf.create({"a": [{"b": 1}]})) == {"a[0].b": 1}  # OmegaConf's containers too


# --- stored-config references -------------------------------------------------------------------------------------


def _stored(tmp_path: Path, text: str) -> StoredConfig:
    (tmp_path / "config.yaml").write_text(text)
    return StoredConfig.read(tmp_path / "config.yaml")


def test_references_that_multiply_are_refused_quickly_with_a_short_message(tmp_path: Path) -> None:
    levels = "".join(f"  a{i}: '{('${x.a' + str(i - 1) + '}') * 10}'\n" for i in range(1, 9))
    cfg = _stored(tmp_path, "x:\n  a0: lol\n" + levels + "data:\n  seed: ${x.a8}\n")
    with pytest.raises(StoredConfigError, match="resolves to more than 10,000 characters") as e:
        cfg.get("data.seed", {})
    assert len(str(e.value)) < 400


def test_a_key_referred_to_many_times_is_resolved_once(tmp_path: Path) -> None:
    """Ten references to a key holding ten references, three levels: 1,000 paths, four keys resolved."""
    levels = "".join(f"  a{i}: [{', '.join([repr('${x.a' + str(i - 1) + '}')] * 10)}]\n" for i in range(1, 4))
    cfg = _stored(tmp_path, "x:\n  a0: 1\n" + levels)
    value = cfg.get("x.a3", {})
    assert len(value) == 10 and value[0][0] == [1] * 10
    wide = "".join(f"  a{i}: [{', '.join([repr('${x.a' + str(i - 1) + '}')] * 10)}]\n" for i in range(1, 12))
    with pytest.raises(StoredConfigError, match=f"expands to more than {MAX_STEPS:,} values"):
        _stored(tmp_path, "x:\n  a0: 1\n" + wide).get("x.a11", {})  # 10^11 list items: bounded work


# --- what files claim ---------------------------------------------------------------------------------------------


def test_a_cache_that_would_not_fit_on_its_disk_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    import shutil

    from nag.data.cache import load_or_build

    n = shutil.disk_usage(tmp_path).free // (16 * 16 * 3) + 1
    with pytest.raises(UserInputError, match=r"the synthetic-train dataset cache would take .* GB .* free"):
        load_or_build(tmp_path, "synthetic-train", {"n": n}, range(n), 16, 0, fill=None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoints_callback_state_and_nesting_are_checked(tmp_path: Path) -> None:
    from nag.runs.checkpoint_file import MAX_NESTING, CheckpointError, check_callback_state, check_structure

    state = {"last_model_path": "/elsewhere/x.ckpt", "kth_best_model_path": ""}
    with pytest.raises(CheckpointError, match=r"lacks \['dirpath', 'best_model_path', 'best_model_score'\]"):
        check_callback_state({"callbacks": {"ModelCheckpoint{}": state}}, "ckpt_path", "x")
    check_callback_state({"callbacks": {"EarlyStopping{}": {"wait_count": 0}}}, "ckpt_path", "x")  # no paths: fine
    deep: dict = {}
    node = deep
    for _ in range(MAX_NESTING):
        node["a"] = node = {}
    ckpt = {"state_dict": {}, "hyper_parameters": deep}
    with pytest.raises(CheckpointError, match=f"more than {MAX_NESTING} levels"):
        check_structure(ckpt, "ckpt_path", "x")
    check_structure({"state_dict": {}, "hyper_parameters": {"a": {"b": 1}}}, "ckpt_path", "x")


def test_a_checkpoints_nesting_is_counted_from_its_containers_and_bounded_inclusively() -> None:
    from nag.runs.checkpoint_file import MAX_NESTING, CheckpointError, _depth, check_structure

    assert _depth(5) == 1 and _depth({}) == 1 and _depth({"a": 1}) == 1 and _depth({"a": [1, {"b": 2}]}) == 3
    chain: dict = {}
    node = chain
    for _ in range(MAX_NESTING - 3):  # ckpt (1) > hyper_parameters (2) > chain (3) ... the last empty dict
        node["a"] = node = {}
    ckpt = {"state_dict": {}, "hyper_parameters": {"chain": chain}}
    assert _depth(ckpt) == MAX_NESTING
    check_structure(ckpt, "ckpt_path", "x")  # exactly the bound: nag's own are far below it, but it is allowed
    node["a"] = {}
    with pytest.raises(CheckpointError, match=f"more than {MAX_NESTING} levels"):
        check_structure(ckpt, "ckpt_path", "x")


@pytest.mark.parametrize("field", ["global_step", "epoch", "nag_draw_seed"])
@pytest.mark.parametrize(
    ("value", "ok"),
    [(0, True), (7, True), (2**63 - 1, True), (-1, False), (2**63, False), (True, False), ("3", False), (3.0, False)],
)
def test_a_checkpoints_counters_must_be_integers_in_range(field: str, value: object, ok: bool) -> None:
    from nag.runs.checkpoint_file import CheckpointError, check_structure

    ckpt = {"state_dict": {}, "hyper_parameters": {}, field: value}
    if ok:
        check_structure(ckpt, "ckpt_path", "x")
    else:
        with pytest.raises(CheckpointError, match=rf"ckpt_path=x: {field}=.* must be an integer in \[0, {2**63}\)"):
            check_structure(ckpt, "ckpt_path", "x")


def test_only_the_draw_seed_may_be_null_and_a_missing_counter_is_not_required() -> None:
    from nag.runs.checkpoint_file import CheckpointError, check_structure

    check_structure({"state_dict": {}, "hyper_parameters": {}}, "ckpt_path", "x")  # old files: no counters at all
    check_structure({"state_dict": {}, "hyper_parameters": {}, "nag_draw_seed": None}, "ckpt_path", "x")
    for field in ("global_step", "epoch"):
        with pytest.raises(CheckpointError, match=f"{field}=None must be an integer"):
            check_structure({"state_dict": {}, "hyper_parameters": {}, field: None}, "ckpt_path", "x")


@pytest.mark.parametrize(
    ("state_dict", "shown"), [({"w": [1.0, 2.0]}, "state_dict['w'] is a list"), ({1: torch.ones(2)}, "state_dict['1']")]
)
def test_a_state_dict_entry_must_be_a_named_tensor(state_dict: dict, shown: str) -> None:
    from nag.runs.checkpoint_file import CheckpointError, check_structure

    with pytest.raises(CheckpointError, match=rf"ckpt_path=x: {re.escape(shown)}.* not a tensor; .* crafted"):
        check_structure({"state_dict": state_dict, "hyper_parameters": {}}, "ckpt_path", "x")


def test_the_structure_check_hands_its_key_and_file_to_the_callback_check() -> None:
    from nag.runs.checkpoint_file import CheckpointError, check_structure

    ckpt = {"state_dict": {}, "hyper_parameters": {}, "callbacks": {"ModelCheckpoint{}": {"last_model_path": ""}}}
    with pytest.raises(CheckpointError, match=r"^resume=run-7/last\.ckpt: .*lacks"):
        check_structure(ckpt, "resume", "run-7/last.ckpt")


@pytest.mark.parametrize(
    "ckpt", [[1, 2], {"hyper_parameters": {}}, {"state_dict": [("w", 1)], "hyper_parameters": {}}], ids=str
)
def test_a_file_without_a_state_dict_mapping_is_not_a_checkpoint(ckpt: object) -> None:
    from nag.runs.checkpoint_file import CheckpointError, check_structure

    with pytest.raises(CheckpointError, match=r"ckpt_path=x is not a Lightning checkpoint \(no state_dict\)"):
        check_structure(ckpt, "ckpt_path", "x")


def _adam_with_decay(epochs: int) -> tuple:
    from nag.model.schedules import StepDecay

    weight = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([weight], lr=1e-3)
    sched = StepDecay(opt, milestones=[2, 4], factors=[0.5, 0.2])
    for _ in range(epochs):
        weight.grad = torch.ones(3)
        opt.step()
        sched.step()
    return opt, sched


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (None, None),
        (
            lambda c: c["optimizer_states"][0]["param_groups"][0].update(lr=7.5, initial_lr=1e-3),
            "has lr=7.5 but model.optimizer.lr=",
        ),
        (lambda c: c["optimizer_states"][0]["param_groups"][0].update(betas=(0.5, 0.9)), "has betas=(0.5, 0.9)"),
        (lambda c: c["lr_schedulers"][0].update(milestones=[100, 200]), "milestones=[100, 200]"),
        (lambda c: c["lr_schedulers"][0].update(base_lrs=[7.5]), "base_lrs=[7.5]"),
        (lambda c: c["lr_schedulers"][0].update(rate=1), "keys the configured scheduler does not"),
        (lambda c: c["lr_schedulers"][0].update(last_epoch=10**9), "last_epoch=1000000000"),
        (lambda c: c["optimizer_states"][0]["state"][0].update(exp_avg=torch.full((3,), float("nan"))), "NaN"),
        # a non-finite tensor however deep the (allowed) nesting puts it
        (lambda c: c["optimizer_states"][0]["state"][0].update(x=[[[[[[[[[torch.tensor([math.inf])]]]]]]]]]), "NaN"),
    ],
)
def test_the_optimizer_check_compares_what_training_goes_on_with(edit, words) -> None:
    """A checkpoint at epoch 5 of a StepDecay schedule (the rate is 1e-4 there): the stored state must be what the
    configured optimizer and scheduler give at epoch 5, value for value."""
    from nag.runs.checkpoint_file import CheckpointError, check_optimizer_state

    opt, sched = _adam_with_decay(5)
    ckpt = {"optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()]}
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)  # a copy, as a file would hold it
    ckpt = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    if edit is not None:
        edit(ckpt)
    fresh, fresh_sched = _adam_with_decay(0)
    if words is None:
        check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)
        assert fresh.param_groups[0]["lr"] == pytest.approx(1e-4)  # stepped to the stored epoch
        return
    with pytest.raises(CheckpointError, match=f"^last.ckpt: .*{re.escape(words)}"):
        check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)


@pytest.mark.parametrize(
    "history", [{"val_nll": "x"}, {"epochs": [1, 2]}, {"val_nll": 10**400}, {"epochs": True}, "pickle"]
)
def test_a_planted_flow_file_is_named_and_refitted(tmp_path: Path, caplog, history) -> None:
    import pickle

    from nag.samplers.flow import FlowSampler

    codes = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    flow = FlowSampler(transforms=2, hidden=16, max_epochs=3, store=str(tmp_path)).fit(codes, prior=None)
    (stored,) = tmp_path.glob("flow-*.pt")
    if history == "pickle":
        stored.write_bytes(pickle.dumps({"key": flow.key(codes)}))
    else:
        data = torch.load(stored, weights_only=True)
        data.update(history)
        torch.save(data, stored)
    with caplog.at_level(logging.WARNING, logger="nag.samplers.flow"):
        again = FlowSampler(transforms=2, hidden=16, max_epochs=3, store=str(tmp_path)).fit(codes, prior=None)
    assert f"ignored {stored}" in caplog.text and "fitting the flow again" in caplog.text
    assert again.history["stored"] is False and again.sample(4).shape == (4, 2)


# --- the harness's own measurement --------------------------------------------------------------------------------


def test_the_harness_measures_the_commands_peak_memory_not_the_tests(tmp_path: Path) -> None:
    """What the crafted-input cases bound (``max_rss_mb``) is the command's own, never this test process's (which
    holds 1 GB here): a new process that allocates 300 MB reads above 300, one that allocates nothing far below;
    through the warm launcher (tests/helpers/launcher.py) the command starts from the launcher's imports (torch,
    Lightning: a few hundred MB, as any nag command holds) and its 300 MB are seen on top of them."""
    import numpy as np

    from tests.helpers import run_module

    (tmp_path / "allocate.py").write_text("import sys\nblock = bytearray(int(sys.argv[1]) * 2**20)\n")
    held = np.ones(2**30 // 8)  # noqa: F841  (held while the children run)
    big = run_module("allocate", ["300"], tmp_path, tmp_path, fresh=True)
    small = run_module("allocate", ["0"], tmp_path, tmp_path, fresh=True)
    assert big.returncode == small.returncode == 0
    assert big.max_rss_mb > 300 and small.max_rss_mb < 100, (big.max_rss_mb, small.max_rss_mb)
    warm_big = run_module("allocate", ["300"], tmp_path, tmp_path)
    warm_small = run_module("allocate", ["0"], tmp_path, tmp_path)
    assert warm_big.max_rss_mb - warm_small.max_rss_mb > 290 and warm_small.max_rss_mb < 1000, (
        warm_big.max_rss_mb,
        warm_small.max_rss_mb,
    )


def test_stored_and_configured_optimizer_values_compare_as_numbers_within_float_noise() -> None:
    """What a checkpoint stores (floats through a file, tensors, tuples as lists) against what the configured
    optimizer gives: equal within 1e-6 relative (1e-12 absolute at 0); a bool or None is compared exactly."""
    from nag.runs.checkpoint_file import _same

    assert _same(1e-3, 1e-3 * (1 + 5e-7)) and not _same(1e-3, 1e-3 * (1 + 5e-6))
    assert _same(0.0, 1e-13) and not _same(0.0, 1e-11)
    assert _same((0.9, 0.999), [0.9, 0.999]) and not _same([0.9], [0.9, 0.999]) and not _same([0.9], 0.9)
    assert not _same(0.9, [0.9])
    assert not _same(True, 1 + 1e-9) and not _same(1 + 1e-9, True) and _same(True, True) and _same(True, 1)
    assert not _same(None, 0) and not _same(0, None) and _same(None, None)
    assert _same(torch.tensor([0.5, 1.0]), [0.5, 1.0]) and not _same(torch.tensor([0.5]), [0.6])
    assert not _same(1, "1") and not _same("1", 1) and _same("adam", "adam")


def _saved(opt, sched) -> dict:
    buffer = io.BytesIO()
    torch.save({"optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()]}, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda c: c["lr_schedulers"][0].update(last_epoch=-1), "last_epoch=-1"),
        (lambda c: c["lr_schedulers"][0].update(last_epoch=True), "last_epoch=True"),
        (lambda c: c["lr_schedulers"][0].update(last_epoch=100_001), "last_epoch=100001"),
        (lambda c: c["lr_schedulers"][0].update(last_epoch=100_000, _step_count=100_001), None),  # the bound itself
        (lambda c: c["optimizer_states"][0]["param_groups"][0].pop("initial_lr"), None),  # none stored: fine
        (lambda c: c["optimizer_states"][0]["param_groups"][0].update(initial_lr=5.0), "initial_lr=5.0"),
        (lambda c: c["optimizer_states"][0].update(param_groups=[]), "no param_groups like"),
        (lambda c: c["optimizer_states"][0].update(param_groups=[{}, {}]), "no param_groups like"),
        (lambda c: c.update(optimizer_states=["not a state"]), ""),
    ],
)
def test_the_scheduler_epoch_and_param_groups_are_bounded_and_compared(edit, words) -> None:
    from nag.runs.checkpoint_file import CheckpointError, check_optimizer_state

    fresh, fresh_sched = _adam_with_decay(0)
    check_optimizer_state(_saved(*_adam_with_decay(0)), fresh, "last.ckpt", scheduler=fresh_sched)  # epoch 0: fine
    ckpt = _saved(*_adam_with_decay(5))
    edit(ckpt)
    fresh, fresh_sched = _adam_with_decay(0)
    if words is None:
        check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)
        return
    with pytest.raises(CheckpointError, match=f"^last.ckpt: .*{re.escape(words)}"):
        check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)


def test_a_plateau_scheduler_is_compared_without_replaying_its_metric() -> None:
    """ReduceLROnPlateau follows a metric: its epoch is not replayed, and its bookkeeping (best, bad epochs,
    cooldown, epoch) may differ from a fresh one; its settings may not."""
    from nag.runs.checkpoint_file import CheckpointError, check_optimizer_state

    def plateau():
        weight = torch.nn.Parameter(torch.zeros(3))
        opt = torch.optim.Adam([weight], lr=1e-3)
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)

    opt, sched = plateau()
    for loss in (1.0, 0.5, 0.6, 0.7):
        sched.step(loss)
    ckpt = _saved(opt, sched)
    fresh, fresh_sched = plateau()
    check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)
    ckpt["lr_schedulers"][0].update(cooldown_counter=2, num_bad_epochs=1, best=0.25, last_epoch=9)  # bookkeeping
    fresh, fresh_sched = plateau()
    check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)
    for setting in ("threshold", "eps"):  # settings stored after the first bookkeeping key are compared too
        changed = _saved(opt, sched)
        changed["lr_schedulers"][0][setting] = 0.125
        fresh, fresh_sched = plateau()
        with pytest.raises(CheckpointError, match=f"{setting}=0.125"):
            check_optimizer_state(changed, fresh, "last.ckpt", scheduler=fresh_sched)
    ckpt["lr_schedulers"][0]["factor"] = 0.9
    fresh, fresh_sched = plateau()
    with pytest.raises(CheckpointError, match="factor=0.9"):
        check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)


def test_a_plateau_schedulers_lowered_rates_are_taken_when_the_configured_rate_reaches_them() -> None:
    """The rates ReduceLROnPlateau lowered (by its factor, to its floor, at most once per epoch) are accepted and
    are what training goes on with; a rate it cannot have reached is refused."""
    from nag.runs.checkpoint_file import CheckpointError, check_optimizer_state

    def plateau():
        weight = torch.nn.Parameter(torch.zeros(3))
        opt = torch.optim.Adam([weight], lr=1e-3)
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=2e-4)

    opt, sched = plateau()
    for loss in (1.0, 2.0, 3.0):  # two bad epochs: 1e-3 -> 5e-4 -> 2.5e-4
        sched.step(loss)
    ckpt = _saved(opt, sched)
    fresh, fresh_sched = plateau()
    check_optimizer_state(ckpt, fresh, "last.ckpt", scheduler=fresh_sched)
    assert fresh.param_groups[0]["lr"] == pytest.approx(2.5e-4) and fresh_sched.get_last_lr() == pytest.approx([2.5e-4])
    sched.step(4.0)  # one more: the floor, 2e-4, not 1.25e-4
    fresh, fresh_sched = plateau()
    check_optimizer_state(_saved(opt, sched), fresh, "last.ckpt", scheduler=fresh_sched)
    assert fresh.param_groups[0]["lr"] == pytest.approx(2e-4)

    def edited(rate: float, epoch: int) -> dict:
        changed = _saved(opt, sched)
        changed["optimizer_states"][0]["param_groups"][0]["lr"] = rate
        changed["lr_schedulers"][0].update(_last_lr=[rate], last_epoch=epoch)
        return changed

    fresh, fresh_sched = plateau()
    check_optimizer_state(edited(5e-4, 1), fresh, "last.ckpt", scheduler=fresh_sched)  # one reduction in one epoch
    for rate, epoch in ((2.5e-4, 1), (3e-4, 9), (1.25e-4, 9), (2e-3, 9)):  # too soon, not a power, floor, above
        fresh, fresh_sched = plateau()
        with pytest.raises(CheckpointError, match=r"_last_lr=.*does not reach by model.scheduler's factor 0.5"):
            check_optimizer_state(edited(rate, epoch), fresh, "last.ckpt", scheduler=fresh_sched)
    for rates in ([2e-4, 2e-4], "2e-4", None):
        changed = _saved(opt, sched)
        changed["lr_schedulers"][0]["_last_lr"] = rates
        fresh, fresh_sched = plateau()
        with pytest.raises(CheckpointError, match=r"not one rate per optimizer param group"):
            check_optimizer_state(changed, fresh, "last.ckpt", scheduler=fresh_sched)


def test_a_trees_size_counts_every_container_and_leaf_up_to_one_past_the_budget() -> None:
    from nag.runs.stored_config import _size

    assert _size(7) == 1
    assert _size({"a": [1, 2], "b": 3, "c": {}}) == 6  # the mapping, the list, its 2 items, 3, the empty mapping
    assert _size(list(range(MAX_STEPS - 1))) == MAX_STEPS  # the list and its items: within the budget
    assert _size(list(range(3 * MAX_STEPS))) == MAX_STEPS + 1  # counting stops one past it


@pytest.mark.parametrize(("n", "refused"), [(33_331, False), (33_332, True)])
def test_each_reuse_of_a_resolved_key_costs_its_size_summed_to_the_budgets_exact_bound(
    tmp_path: Path, n: int, refused: bool
) -> None:
    """Three references to a list of n items: 1 (the outer list) + 3 (its items) + 3 x (n + 1) (the list each
    time) = 3n + 7 steps, exactly MAX_STEPS = 100,000 at n = 33,331 (allowed) and one item more is refused."""
    cfg = StoredConfig({"x": {"a": [1] * n, "b": ["${x.a}", "${x.a}", "${x.a}"]}}, tmp_path / "config.yaml")
    assert MAX_STEPS == 3 * 33_331 + 7
    if refused:
        with pytest.raises(StoredConfigError, match=f"x.b\\[2\\] expands to more than {MAX_STEPS:,} values"):
            cfg.get("x.b", {})
    else:
        value = cfg.get("x.b", {})
        assert [len(v) for v in value] == [n, n, n]


def test_a_value_reused_by_reference_is_a_copy_the_caller_may_change(tmp_path: Path) -> None:
    cfg = StoredConfig({"x": {"a": [[1]], "b": ["${x.a}", "${x.a}", "${x.a}"]}}, tmp_path / "config.yaml")
    value = cfg.get("x.b", {})
    value[1][0].append(2)
    assert value == [[[1]], [[1, 2]], [[1]]]


def test_this_machines_paths_come_from_nags_own_paths_file_and_the_command_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nag.runs.stored_config import local_paths

    monkeypatch.setenv("NAG_DATA_DIR", "/here/data")
    monkeypatch.setenv("NAG_CACHE_DIR", "/here/cache")
    run = tmp_path / "run"
    assert local_paths(run) == {
        "paths.output_dir": str(run),
        "paths.data_dir": "/here/data",
        "paths.cache_dir": "/here/cache",
    }
    given = local_paths(run, {"data_dir": Path("/mine"), "paths.cache_dir": "/c"})
    assert given == {"paths.output_dir": str(run), "paths.data_dir": "/mine", "paths.cache_dir": "/c"}
    monkeypatch.delenv("NAG_DATA_DIR")
    assert local_paths(run)["paths.data_dir"] == "data"


def test_a_multirun_is_hydras_multirun_mode_and_nothing_else() -> None:
    from hydra.conf import HydraConf
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from nag.runs.sweep import in_multirun

    before = HydraConfig.instance().cfg  # an earlier test's compose may have set it
    hydra = OmegaConf.structured(HydraConf)
    try:
        HydraConfig.instance().cfg = None
        assert not HydraConfig.initialized() and in_multirun() is False  # a plain call (tests, notebooks)
        for mode, expected in ((RunMode.RUN, False), (RunMode.MULTIRUN, True)):
            hydra.mode = mode
            HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))
            assert in_multirun() is expected, mode
    finally:
        HydraConfig.instance().cfg = before


def test_a_sweep_dir_given_on_the_command_line_is_made_with_its_parents(tmp_path: Path) -> None:
    sweep = tmp_path / "not" / "yet" / "sweep"
    callbacks, cfg = _hydra_callbacks(sweep)
    callbacks.on_multirun_start(config=cfg)
    assert sweep.is_dir() and not any(sweep.iterdir())


def test_a_walk_counts_every_entry_to_its_exact_bound_and_stops_at_its_depth(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "x.txt").write_text("x")
    names = [str(p.relative_to(tmp_path)) for p, _ in walk(tmp_path, max_entries=4)]
    assert names == ["a", "x.txt", "a/b", "a/b/c"]  # breadth first, four entries: within the bound
    with pytest.raises(UnsafeFileError, match=r"holds more than 3 files"):
        list(walk(tmp_path, max_entries=3))
    assert [str(p.relative_to(tmp_path)) for p, _ in walk(tmp_path, max_depth=2)] == ["a", "x.txt", "a/b", "a/b/c"]
    # One level less and a/b/c would never be looked into: refused rather than passed unseen.
    with pytest.raises(UnsafeFileError, match=r"more than 2 levels down \(in .*a/b\); not a folder nag wrote"):
        list(walk(tmp_path, max_depth=1))
    assert len(list(walk(tmp_path))) == 4  # the defaults reach far below this


def test_a_link_nested_below_the_walks_depth_is_refused_not_missed(tmp_path: Path) -> None:
    """A stray hidden deeper than the walk looks must not pass the checks built on it (they fail closed)."""
    deep = tmp_path.joinpath(*["d"] * 13)
    deep.mkdir(parents=True)
    (deep / "escape").symlink_to("/etc")
    with pytest.raises(UnsafeFileError, match=r"more than 13 levels down"):
        strays_below(tmp_path)
    shallow = tmp_path / "s"
    shallow.joinpath(*["d"] * 11).mkdir(parents=True)
    (shallow.joinpath(*["d"] * 11) / "escape").symlink_to("/etc")
    assert [(p.name, kind) for p, kind in strays_below(shallow)] == [("escape", "a symbolic link")]


@pytest.mark.parametrize(
    ("text", "where"),
    [("a:\n  1: x\n", "under a"), ("a:\n  b:\n    - {2: x}\n", "under a.b"), ("- {3: x}\n", None)],
)
def test_a_key_that_is_not_text_is_named_with_its_place_at_any_depth(tmp_path: Path, text: str, where: str) -> None:
    if where is None:  # a list at the top is refused as not a mapping first
        with pytest.raises(StoredConfigError, match="holds a list"):
            _stored(tmp_path, text)
        return
    with pytest.raises(StoredConfigError, match=rf"config.yaml has a key \d under {where.split()[1]} that is not text"):
        _stored(tmp_path, text)


def test_reading_a_crafted_checkpoint_names_its_key_and_file(tmp_path: Path) -> None:
    from nag.runs.checkpoint_file import CheckpointError, read_checkpoint

    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {}, "global_step": -1}, path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path, key="resume")
    assert str(e.value).startswith(f"resume={path}: global_step=-1 must be an integer")

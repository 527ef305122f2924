"""The trust boundary fails closed: crafted sweeps, run dirs and checkpoints that once slipped past a check.

Each row is a crafted input through the real entry point, asserting what ``test_untrusted.py``'s table asserts
(:func:`tests.helpers.untrusted.check_handled_safely`: no payload, the home folder unchanged, no secret, bounded
time and memory, one short message naming the file). The permission cases run with root's override capabilities
dropped (``setpriv``), so a folder that cannot be entered is what it is for a normal user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.helpers import NORMAL_USER, TINY
from tests.helpers.untrusted import Case, Fixtures, check_handled_safely, run_copy, sweep_copy

#: The command that made the session's report sweep (tests/conftest.py): continuing it must be the same command.
REPORT_SWEEP = [
    "-m",
    "experiment=report_plain,report_mean0,report_mean-3",
    *TINY,
    "data.n_train=128",
    "trainer.max_epochs=1",
    "test=false",
]
#: A name a crafted checkpoint gives its callback state: a newline, then a shell command.
CRAFTED_NAME = "x\ntouch $HOME/PWNED\n#"


# --- continued sweeps ---------------------------------------------------------------------------------------------


def _continued(*edits: Callable[[Path, Path], None]) -> Callable[[Path, Fixtures], list[str]]:
    """The report sweep copied, job 1 made interrupted (no metrics), ``edits`` applied; then the same -m command
    with ``hydra.sweep.dir=<the copy>`` continues it."""

    def build(tmp: Path, fx: Fixtures) -> list[str]:
        sweep = sweep_copy(tmp, fx)
        (sweep / "1" / "metrics.json").unlink()
        for edit in edits:
            edit(sweep, tmp)
        return [*REPORT_SWEEP, f"hydra.sweep.dir={sweep}"]

    return build


def _locked_folder(sweep: Path, tmp: Path) -> None:
    """A folder that can be listed but not entered (0444): its entries cannot be looked at."""
    (sweep / "notes").mkdir()
    (sweep / "notes" / "todo.txt").write_text("later\n")
    os.chmod(sweep / "notes", 0o444)


def _log_to_bashrc(sweep: Path, tmp: Path) -> None:
    (sweep / "1" / "train.log").unlink(missing_ok=True)
    (sweep / "1" / "train.log").symlink_to(tmp / "home" / "bashrc")


def _crafted_state_name(sweep: Path, tmp: Path) -> None:
    """Job 1's checkpoint: its ModelCheckpoint state renamed to a line of shell, naming a file elsewhere, so the
    refusal quotes the name."""
    last = sweep / "1" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ((_, state),) = ckpt["callbacks"].items()
    state["best_model_path"] = str(tmp / "home" / "thesis.png")
    ckpt["callbacks"] = {CRAFTED_NAME: state}
    torch.save(ckpt, last)


def _fifo(relative: str) -> Callable[[Path, Path], None]:
    def edit(folder: Path, tmp: Path) -> None:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).unlink(missing_ok=True)
        os.mkfifo(folder / relative)

    return edit


def _job_dir_a_file(sweep: Path, tmp: Path) -> None:
    shutil.rmtree(sweep / "2")
    (sweep / "2").write_text("not a job dir\n")


def _log_escaped(tmp: Path, out: str) -> None:
    """The refusal quoting the crafted name is in job 1's log and failure record, its newlines escaped."""
    log = (tmp / "sweep" / "1" / "train.log").read_text()
    assert "x\\ntouch $HOME/PWNED\\n#" in log, log[-2000:]
    assert json.loads((tmp / "sweep" / "1" / "failure.json").read_text())["status"] == "failed"


# --- run dirs and checkpoints -------------------------------------------------------------------------------------


def _resume_with(edit: Callable[[Path, Path], None]) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = run_copy(tmp, fx)
        edit(run, tmp)
        return [f"resume={run}"]

    return build


EVALUATE = ["n_eval=16", "n_samples=16", "n_fit=16", "attributes.enabled=false", "hydra.run.dir={tmp}/out"]


def _evaluate(
    edit_ckpt: Callable[[dict], None] | None = None, edit_config: Callable[[str], str] | None = None
) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = run_copy(tmp, fx)
        last = run / "checkpoints" / "last.ckpt"
        if edit_ckpt is not None:
            ckpt = torch.load(last, weights_only=True)
            edit_ckpt(ckpt)
            limit = sys.getrecursionlimit()
            sys.setrecursionlimit(20_000)  # the crafted nesting must survive torch.save
            try:
                torch.save(ckpt, last)
            finally:
                sys.setrecursionlimit(limit)
        if edit_config is not None:
            path = run / ".hydra" / "config.yaml"
            path.write_text(edit_config(path.read_text()))
        return [f"ckpt_path={last}", *EVALUATE]

    return build


def _train_from(edit_ckpt: Callable[[dict], None]) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = run_copy(tmp, fx)
        last = run / "checkpoints" / "last.ckpt"
        ckpt = torch.load(last, weights_only=True)
        edit_ckpt(ckpt)
        torch.save(ckpt, last)
        return [*TINY, f"ckpt_path={last}", "hydra.run.dir={tmp}/out"]

    return build


def _lr_behind_initial_lr(ckpt: dict) -> None:
    """The stored group trains at 7.5; its initial_lr (what the old check read) says the configured 0.001."""
    for group in ckpt["optimizer_states"][0]["param_groups"]:
        group.update(lr=7.5, initial_lr=0.001)


def _latent_dim(n: int) -> Callable[[dict], None]:
    def edit(ckpt: dict) -> None:
        ckpt["hyper_parameters"]["latent_dim"] = n

    return edit


def _hidden(n: int) -> Callable[[dict], None]:
    """Nets claiming ``n`` hidden units: built as claimed, 16 GB of weights before any shape is compared."""

    def edit(ckpt: dict) -> None:
        for net in ("encoder", "decoder"):
            ckpt["hyper_parameters"][net]["hidden_dim"] = n

    return edit


def _paths_without_dirpath(ckpt: dict) -> None:
    for state in ckpt["callbacks"].values():
        del state["dirpath"], state["best_model_path"]


def _nested(ckpt: dict) -> None:
    deep: dict = {}
    node = deep
    for _ in range(4000):
        node["a"] = {}
        node = node["a"]
    ckpt["hyper_parameters"]["encoder"]["extra"] = deep


def _reference_bomb(text: str) -> str:
    """``x.a{i}`` = ten references to ``x.a{i-1}``, eight levels: 10^8 characters from a 4 KB file."""
    lines = ["x:", "  a0: lol"] + [f"  a{i}: '{('${x.a' + str(i - 1) + '}') * 10}'" for i in range(1, 9)]
    return text.replace("\ndata:\n", "\ndata:\n  bomb: ${x.a8}\n", 1) + "\n".join(lines) + "\n"


def _n_train(text: str) -> str:
    return re.sub(r"(\n  n_train:) \d+", r"\1 100000000", text, count=1)


def _sample(tmp: Path, fx: Fixtures) -> list[str]:
    run = run_copy(tmp, fx)
    return [f"ckpt_path={run}/checkpoints/last.ckpt", "n=200000000", f"out={tmp}/samples", "hydra.run.dir={tmp}/out"]


# --- tables -------------------------------------------------------------------------------------------------------

HOSTILE = {
    "0": "+x=<script>alert(1)</script><img src=x onerror=alert(2)>",
    "1": "+x=[a](javascript:alert(3))",
    "2": "+x=\u202eevil\na | b",
}


def _hostile_overrides(tmp: Path, fx: Fixtures) -> list[str]:
    sweep = sweep_copy(tmp, fx)
    for job, extra in HOSTILE.items():
        path = sweep / job / ".hydra" / "overrides.yaml"
        path.write_text(path.read_text() + f"- {json.dumps(extra)}\n")
    return [str(sweep), "--n-eval", "16", "--n-samples", "16"]


def _markdown_inert(tmp: Path, out: str) -> None:
    md = (tmp / "sweep" / "compare" / "summary.md").read_text()
    assert "\u202e" not in md, "a direction override kept in summary.md"
    for raw in (r"(?<!\\)<script", r"(?<!\\)<img", r"(?<!\\)\]\(javascript"):  # a tag or a link, not escaped
        assert not re.search(raw, md), f"{raw!r} kept in summary.md"
    assert r"\<script\>" in md and r"\[a\](javascript" in md  # shown as the text it is
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(rows) == 2 + 3, rows  # header, rule, one row per job: a newline in a value split no row
    breaks = {len(re.findall(r"(?<!\\)\|", ln)) for ln in rows}
    assert len(breaks) == 1, f"rows with different numbers of columns: {rows}"


# fmt: off
CASES = [
    # 1. Continuing someone else's sweep.
    Case("continued sweep: a folder that cannot be entered, a log linked to ~/.bashrc, a shell line in a name",
         "nag.train", _continued(_locked_folder, _log_to_bashrc, _crafted_state_name),
         ["{tmp}/sweep/notes/todo.txt cannot be read", "refused, not passed over"],
         as_normal_user=True),
    Case("continued sweep: a shell line in a checkpoint state name is escaped in the log", "nag.train",
         _continued(_crafted_state_name), ["2 of 3 job(s) ok"], check=_log_escaped, one_message=False),
    Case("continued sweep: job 1's train.log a FIFO", "nag.train", _continued(_fifo("1/train.log")),
         ["1/train.log (a named pipe)"]),
    Case("continued sweep: job 1's .hydra/config.yaml a FIFO", "nag.train",
         _continued(_fifo("1/.hydra/config.yaml")), ["1/.hydra/config.yaml (a named pipe)"]),
    Case("continued sweep: multirun.yaml a FIFO", "nag.train", _continued(_fifo("multirun.yaml")),
         ["multirun.yaml (a named pipe)"]),
    Case("continued sweep: a job dir that is a regular file", "nag.train", _continued(_job_dir_a_file),
         ["2 should be job dirs but are files"]),
    # 3. Run dirs: regular files and folders only.
    Case("resume: train.log a FIFO", "nag.train", _resume_with(_fifo("train.log")), ["train.log (a named pipe)"]),
    Case("resume: .hydra/resume/config.yaml a FIFO", "nag.train", _resume_with(_fifo(".hydra/resume/config.yaml")),
         [".hydra/resume/config.yaml (a named pipe)"]),
    # 2. References that multiply.
    Case("evaluate: a stored config whose references grow ten-fold per level", "nag.evaluate",
         _evaluate(edit_config=_reference_bomb), ["config.yaml", "resolves to more than 10,000 characters"]),
    # 3. Sizes read from files are checked before anything is allocated.
    Case("evaluate: a checkpoint claiming latent_dim 12,000,000", "nag.evaluate", _evaluate(_latent_dim(12_000_000)),
         ["latent_dim=12000000 must be a positive integer of at most 65,536"]),
    Case("evaluate: hidden layers of 50 million units its own tensors do not have", "nag.evaluate",
         _evaluate(_hidden(50_000_000)), ["holds weights of another architecture", "different shapes"]),
    Case("evaluate: a stored config claiming data.n_train 100,000,000", "nag.evaluate", _evaluate(edit_config=_n_train),
         ["n_train=100000000 must be <= 10,000,000"]),
    Case("sample: n=200,000,000 typed by the user", "nag.sample", _sample, ["n=200000000 must be <= 200,000"]),
    Case("ckpt_path: lr 7.5 behind an initial_lr of 0.001", "nag.train", _train_from(_lr_behind_initial_lr),
         ["last.ckpt", "lr=7.5", "model.optimizer.lr=0.001"]),
    # 4. Low: each a traceback before.
    Case("ckpt_path: checkpoint paths without dirpath or best_model_path", "nag.train",
         _train_from(_paths_without_dirpath), ["lacks ['dirpath', 'best_model_path']"]),
    Case("evaluate: hyper-parameters nested 4,000 deep", "nag.evaluate", _evaluate(_nested),
         ["nests its contents more than 64 levels deep"]),
    Case("compare: HTML, a javascript link, an RTL override and a newline in override values", "nag.compare",
         _hostile_overrides, [], code=0, check=_markdown_inert),
]
# fmt: on


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_crafted_input_is_refused_or_handled_safely(
    case: Case, tiny_run: Path, report_sweep: Path, tmp_path: Path, cache_dir: Path, monkeypatch, capsys, caplog
) -> None:
    if case.as_normal_user and os.geteuid() == 0 and not NORMAL_USER:
        pytest.fail("setpriv (util-linux) is needed to run the permission cases as a normal user")
    try:
        check_handled_safely(case, Fixtures(tiny_run, report_sweep), tmp_path, cache_dir, monkeypatch, capsys, caplog)
    finally:
        for folder in tmp_path.rglob("notes"):
            os.chmod(folder, 0o755)  # so that pytest can remove it

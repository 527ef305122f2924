"""The crafted-input harness of ``tests/e2e/test_untrusted*.py``: a case builds one crafted input under its own
folder, runs an entry point on it as a user would, and :func:`check_handled_safely` asserts what the threat model
promises (docs: reliability and the threat model).

What every case must show: no payload ran (no ``pwned`` file, no line of a planted shell command in any file), no
file of the fake home folder (a ``.bashrc``, a thesis figure) changed, no secret from the environment in the
output or any file, bounded wall time and peak memory, no ``outputs/`` folder beside a given ``hydra.run.dir``,
and a refusal is exactly one short message naming what is wrong, without a traceback.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from tests.helpers import run_module

SECRET = "s3cr3t-" + hashlib.sha1(b"nag").hexdigest()[:12]
#: What a case may take, wall time (the subprocess's start and torch's import included), and peak memory.
SECONDS = 60
MAX_RSS_MB = 2500
#: The longest refusal message: a message quotes at most a few hundred characters of any file.
MAX_MESSAGE = 2000
#: The shell command a crafted file tries to get written as a line of its own (a log, a .bashrc).
PLANTED_LINE = b"\ntouch $HOME/PWNED"


@dataclass
class Fixtures:
    tiny_run: Path
    report_sweep: Path


@dataclass
class Case:
    """One crafted input. ``build(tmp, fx)`` writes it under ``tmp`` and returns the arguments of the command;
    ``expect`` are words the output must contain ({tmp} is filled in); ``check(tmp, output)`` asserts more.
    ``as_normal_user``: run with root's override capabilities dropped (permission cases). ``one_message=False``:
    a sweep whose job fails, which ends with the sweep's summary instead of one error message."""

    name: str
    module: str  # nag.train, nag.evaluate, nag.sample (subprocesses), nag.report, nag.compare (in process)
    build: Callable[[Path, Fixtures], list[str]]
    expect: list[str]
    code: int = 1
    check: Callable[[Path, str], None] | None = None
    tags: list[str] = field(default_factory=list)
    as_normal_user: bool = False
    one_message: bool = True


SUBPROCESS = ("nag.train", "nag.evaluate", "nag.sample")


def run_copy(tmp: Path, fx: Fixtures) -> Path:
    """A copy of a finished tiny run (its checkpoint's own paths rewritten to the copy, as if trained there)."""
    run = tmp / "run"
    shutil.copytree(fx.tiny_run, run, symlinks=True)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for state in ckpt["callbacks"].values():
        old = state.get("dirpath")
        if old:
            state.update(
                {
                    k: str(v).replace(old, str(run / "checkpoints"))
                    for k, v in state.items()
                    if k.endswith("_path") and v
                }
            )
            best_k = state["best_k_models"].items()
            state["best_k_models"] = {k.replace(old, str(run / "checkpoints")): v for k, v in best_k}
            state["dirpath"] = str(run / "checkpoints")
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    return run


def sweep_copy(tmp: Path, fx: Fixtures) -> Path:
    """A copy of the report sweep without its derived folders."""
    sweep = tmp / "sweep"
    shutil.copytree(fx.report_sweep, sweep, symlinks=True)
    for derived in ("compare", "report"):
        shutil.rmtree(sweep / derived, ignore_errors=True)
    return sweep


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def home(tmp: Path) -> Path:
    """The user's files a crafted input aims at: a ``.bashrc``, a thesis figure, a folder of figures."""
    folder = tmp / "home"
    (folder / "figures").mkdir(parents=True)
    (folder / "bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    (folder / "thesis.png").write_bytes(buffer.getvalue())
    (folder / "figures" / "fig1.png").write_bytes(buffer.getvalue())
    return folder


def in_process(module: str, args: list[str], capsys, caplog) -> tuple[int, str]:
    main = importlib.import_module(module).main
    code = 0
    with caplog.at_level(logging.INFO):
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
    captured = capsys.readouterr()
    return code, captured.out + captured.err + caplog.text


def _files(tmp: Path) -> list[Path]:
    out = []
    for p in tmp.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                out.append(p)
        except PermissionError:
            continue
    return out


def check_handled_safely(
    case: Case, fx: Fixtures, tmp_path: Path, cache_dir: Path, monkeypatch, capsys, caplog
) -> None:
    """Build ``case``, run it, and assert the threat model's promises (module docstring)."""
    user_home = home(tmp_path)
    before = digest(user_home)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.build(tmp_path, fx)]
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    monkeypatch.setenv("NAG_CACHE_DIR", str(cache_dir))
    start = time.monotonic()
    rss = 0.0
    if case.module in SUBPROCESS:
        r = run_module(
            case.module,
            args,
            tmp_path,
            cache_dir,
            full_error=False,
            as_normal_user=case.as_normal_user,
            timeout=4 * SECONDS,
        )
        code, out, rss = r.returncode, r.stdout + r.stderr, r.max_rss_mb
    else:
        assert not case.as_normal_user, "permission cases run as a subprocess"
        code, out = in_process(case.module, args, capsys, caplog)
    elapsed = time.monotonic() - start

    assert code == case.code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for words in case.expect:
        assert words.replace("{tmp}", str(tmp_path)) in out, f"{words!r} not in:\n{out[-2000:]}"
    if case.code and case.one_message:
        assert out.count("error: ") == 1, "one message, not a cascade"
        message = out[out.index("error: ") :].split("\n", 1)[0]
        assert len(message) <= MAX_MESSAGE, f"a message of {len(message):,} characters"
    assert elapsed < SECONDS, f"took {elapsed:.0f} s"
    assert rss < MAX_RSS_MB, f"peak memory {rss:.0f} MB"
    assert not list(tmp_path.rglob("pwned")), "a payload ran"
    assert digest(user_home) == before, "a file outside the output dir changed"
    assert SECRET not in out, "a secret from the environment was printed"
    assert PLANTED_LINE.decode() not in out, "text from a file started a line of its own in the output"
    files = _files(tmp_path)
    leaked = [p for p in files if SECRET.encode() in p.read_bytes()]
    assert not leaked, f"a secret from the environment was written to {leaked}"
    planted = [
        p
        for p in files
        if p.stat().st_size < 50 << 20 and PLANTED_LINE in p.read_bytes() and not p.name.endswith(".ckpt")
    ]  # (a checkpoint may hold the crafted name as data)
    assert not planted, f"a crafted line was written as a line of its own into {planted}"
    if any(a.startswith("hydra.run.dir=") for a in args):
        assert not (tmp_path / "outputs").exists(), "a folder was made outside the given hydra.run.dir"
    if case.check:
        case.check(tmp_path, out)

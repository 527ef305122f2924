"""The warm launcher the end-to-end tier runs its commands through (tests/helpers/launcher.py) behaves as a new
``python -m`` process: the same output and exit status, Python's shutdown, a timeout that kills, peak memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_module

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("args", [["prior.variance=-1"], ["--help"]], ids=["bad input", "help"])
def test_a_warm_command_prints_and_exits_as_a_fresh_one(args: list[str], tmp_path: Path, cache_dir: Path) -> None:
    warm = run_module("nag.train", args, tmp_path, cache_dir, full_error=False)
    fresh = run_module("nag.train", args, tmp_path, cache_dir, full_error=False, fresh=True)
    assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert warm.returncode == (1 if args[0].startswith("prior") else 0) and (warm.stdout + warm.stderr).strip()


def test_exit_status_atexit_threads_cwd_and_environment(tmp_path: Path, cache_dir: Path) -> None:
    """A module in the cwd (python -m finds it there), an exit status, an atexit handler and a non-daemon thread
    that ends after the module does: each as in a new process."""
    (tmp_path / "probe_module.py").write_text(
        "import atexit, os, sys, threading, time\n"
        "from pathlib import Path\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), Path('thread').write_text('done'))).start()\n"
        "atexit.register(lambda: Path('atexit').write_text(os.environ['NAG_FID'] + ' ' + ' '.join(sys.argv[1:])))\n"
        "print('to stdout'); print('to stderr', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    for fresh in (False, True):
        r = run_module("probe_module", ["a", "b"], tmp_path, cache_dir, fresh=fresh)
        assert (r.returncode, r.stdout, r.stderr) == (3, "to stdout\n", "to stderr\n")
        assert (tmp_path / "atexit").read_text() == "false a b" and (tmp_path / "thread").read_text() == "done"
        assert r.max_rss_mb > 10
        for name in ("atexit", "thread"):
            (tmp_path / name).unlink()


def test_a_command_past_its_time_is_killed(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "sleepy.py").write_text("import time\ntime.sleep(120)\n")
    r = run_module("sleepy", [], tmp_path, cache_dir, timeout=2)
    assert r.returncode == -9
    again = run_module("nag.train", ["prior.variance=-1"], tmp_path, cache_dir)  # the launcher still serves
    assert again.returncode == 1 and "prior.variance=-1 must be > 0" in again.stderr + again.stdout

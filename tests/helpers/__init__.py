"""What the tests share, in one place: the tiny settings every real run uses, running an entry point as a user
does, and the repository's paths. Fixtures live in ``tests/conftest.py``; CelebA copies in ``helpers/celeba.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

#: The repository (README, conf/, notebooks/).
ROOT = Path(__file__).resolve().parent.parent.parent
CONF = ROOT / "conf"

#: The smallest real run (16-px faces, tiny net, 2 short epochs), plus no sanity check to save time.
TINY = ["debug=tiny", "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false"]
#: The same for fits in process: no callbacks, no logger (what the connection and module tests train).
TINY_FIT = [
    "debug=tiny",
    "callbacks=none",
    "logger=none",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_checkpointing=false",
]


#: The command prefix that runs a program as a normal user would meet the machine: as root (CI), root's override
#: capabilities dropped (``setpriv``, util-linux), so permission bits hold as they do for anyone else.
NORMAL_USER: list[str] = (
    ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)


class Finished(subprocess.CompletedProcess):
    """A finished command, with its peak memory (``max_rss_mb``: the command's own, see :data:`_LAUNCHER`)."""

    max_rss_mb: float = 0.0


def run_module(
    module: str,
    args: list[str],
    cwd: Path,
    cache_dir: Path,
    full_error: bool = True,
    fid: bool = False,
    as_normal_user: bool = False,
    timeout: float = 900,
    fresh: bool = False,
) -> Finished:
    """``python -m <module> <args>`` in ``cwd``, with the session's dataset cache; ``full_error=False`` shows what
    a user sees (without HYDRA_FULL_ERROR). FID is off (``NAG_FID=false``) unless ``fid``: its Inception network costs
    ~0.1 s per image on 2 cores, and the FID tests exercise it. ``as_normal_user``: under :data:`NORMAL_USER`. The
    command runs as a fork of a warm launcher (:mod:`tests.helpers.launcher`) unless ``fresh`` or
    ``as_normal_user`` asks for a new process. The result carries the command's peak resident memory."""
    env = {**os.environ, "NAG_CACHE_DIR": str(cache_dir), "NAG_FID": "true" if fid else "false"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    else:
        env.pop("HYDRA_FULL_ERROR", None)
    command = [*(NORMAL_USER if as_normal_user else []), sys.executable, "-m", module, *args]
    if not (fresh or as_normal_user):
        warm = _run_warm(module, args, cwd, env, command, timeout)
        if warm is not None:
            return warm
    fd, rss_file = tempfile.mkstemp(prefix="nag-rss-")
    os.close(fd)
    p = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, rss_file, *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills the command with its launcher
    )
    out: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda n=n, f=f: out.__setitem__(n, f.read()))
        for n, f in (("out", p.stdout), ("err", p.stderr))
    ]
    for r in readers:
        r.start()
    # past the limit: killed, and the test fails on its exit status
    timer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
    timer.start()
    try:
        p.wait()
    finally:
        timer.cancel()
    for r in readers:
        r.join()
    result = Finished(command, p.returncode, out.get("out", ""), out.get("err", ""))
    with open(rss_file) as f:
        rss = f.read()
    os.unlink(rss_file)
    result.max_rss_mb = int(rss) / 1024 if rss else float("inf")  # KiB on Linux; none: the launcher was killed
    return result


def _run_warm(
    module: str, args: list[str], cwd: Path, env: dict[str, str], command: list[str], timeout: float
) -> Finished | None:
    """The command through the warm launcher (None when it is busy with another thread's command)."""
    from tests.helpers.launcher import LAUNCHER

    with tempfile.TemporaryDirectory(prefix="nag-run-") as io_dir:
        out, err = Path(io_dir, "out"), Path(io_dir, "err")
        out.touch()
        err.touch()
        timers: list[threading.Timer] = []

        def arm(pid: int) -> None:  # past the limit: its process group killed, and the test fails on its status
            timers.append(threading.Timer(timeout, lambda: _kill_group(pid)))
            timers[0].start()

        try:
            done = LAUNCHER.run(module, args, str(cwd), env, str(out), str(err), arm)
        finally:
            for t in timers:
                t.cancel()
        if done is None:
            return None
        text = {n: p.read_bytes().decode("utf-8", errors="replace") for n, p in (("out", out), ("err", err))}
    result = Finished(command, done.returncode, text["out"], text["err"])
    result.max_rss_mb = done.rss_kib / 1024
    return result


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# The command's own peak memory: ``wait4``'s ru_maxrss of a process forked from the test process would include
# the test process's (Linux keeps the larger of the old and the new image's at exec, and a pytest-xdist worker
# that ran the FID tests holds gigabytes), so a small launcher, started first, forks the command from its own
# fresh image, waits for it, writes its ru_maxrss (KiB) to the file argv[1] and exits as it did.
_LAUNCHER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def faces(n: int, seed: int = 0, size: int = 32) -> Any:
    """``n`` embedded synthetic faces ``(n, 3, size, size)`` in [0, 1] (a float tensor)."""
    import torch

    from nag.data.faces import render, sample_params

    imgs = render([sample_params(seed, 0, i) for i in range(n)], size)
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255


def fit_tiny(cfg: Any, model: Any = None, extra_callbacks: list[Any] = (), seed: int | None = 0) -> tuple[Any, ...]:
    """A real in-process fit of ``cfg`` (its model unless ``model`` is given) through the Trainer nag.train builds,
    seeded with ``seed`` (None: not seeded); returns ``(trainer, data, model)``."""
    import lightning as L

    from nag.training.build import build_data_and_trainer, build_model

    if seed is not None:
        L.seed_everything(seed, verbose=False)
    model = build_model(cfg) if model is None else model
    data, trainer = build_data_and_trainer(cfg, model, extra_callbacks=list(extra_callbacks))
    trainer.fit(model, datamodule=data)
    return trainer, data, model


class PicklePayload:
    """An object whose unpickling touches ``marker``: planted in a file nag reads, it proves whether a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))

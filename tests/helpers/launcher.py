"""A warm launcher: ``python -m nag.<x>`` as a fork of a process that imported the third-party stack once.

Importing Lightning costs ~5 CPU-seconds here (it imports torchmetrics, which imports torchvision, torch._dynamo and
scipy.signal) and the end-to-end tier starts a few hundred commands: half the suite's time went to those imports.
Each pytest-xdist worker starts one server (below) that imports torch, Lightning, Hydra and torchvision and then,
for each command, forks a child that does what ``python -m`` does: its own session, cwd, environment, stdin from
/dev/null, stdout and stderr to files, ``sys.argv``, the module run as ``__main__`` (no nag module is imported before
the fork: each command imports nag afresh), then Python's shutdown (threads joined, atexit handlers) and its exit
status. The server reports the child's pid (so a timeout can kill its process group) and then its wait status and
peak memory. Commands that depend on being a new process (dropped capabilities, import-time output) use
:func:`tests.helpers.run_module`'s ``fresh=True``.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import threading
from dataclasses import dataclass

_SERVER = r"""
import io, json, os, runpy, sys, traceback
import torch, lightning, hydra, omegaconf, torchvision  # noqa: F401  (the slow imports, once)

def child(req):
    os.setsid()
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["out"], os.O_WRONLY), (2, req["err"], os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.path[0] = os.getcwd()  # as python -m puts it
    sys.path_importer_cache.clear()
    sys.argv = [req["module"], *req["args"]]
    code = 0
    try:
        runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        import threading
        threading._shutdown()  # what the interpreter does at exit: wait for non-daemon threads
        import atexit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)

reply = sys.stdout
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        reply = None
        child(req)
    reply.write(json.dumps({"pid": pid}) + "\n")
    reply.flush()
    _, status, usage = os.wait4(pid, 0)
    reply.write(json.dumps({"status": os.waitstatus_to_exitcode(status), "rss_kib": usage.ru_maxrss}) + "\n")
    reply.flush()
"""


@dataclass
class Launched:
    returncode: int
    rss_kib: int


class WarmLauncher:
    """One server per test process, started on first use; one command at a time (a second caller at the same
    time gets None and starts a fresh process instead)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _server(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            atexit.register(self._proc.kill)
        return self._proc

    def _reply(self, server: subprocess.Popen) -> str:
        line = server.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the warm launcher exited ({server.poll()}); run with fresh=True to see why")
        return line

    def run(
        self, module: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str, on_pid
    ) -> Launched | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            server = self._server()
            assert server.stdin is not None and server.stdout is not None
            request = {"module": module, "args": args, "cwd": cwd, "env": env, "out": out, "err": err}
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            on_pid(json.loads(self._reply(server))["pid"])
            done = json.loads(self._reply(server))
            return Launched(done["status"], done["rss_kib"])
        finally:
            self._lock.release()


LAUNCHER = WarmLauncher()

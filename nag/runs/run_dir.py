"""A run directory: its layout, and the only code that reads it or writes into it.

``python -m nag.train`` writes a run dir (``outputs/<date>/<time>`` or ``multirun/<date>/<time>/<job>``); its
layout is the constants below, documented once in ``docs/training.md`` (a test holds the two together).

Everything in it is read as untrusted input (:mod:`nag.io.files`, :mod:`nag.runs.stored_config`; the
overrides are applied only by ``resume=``, after :mod:`nag.runs.overrides` checks them): a problem with one
file makes the run *unreadable* with a reason, never a crash or a hang. The writes nag makes itself (metrics,
failure record) go through the atomic writer; what Hydra and Lightning write (logs, events, checkpoints) is made
safe by :meth:`RunDir.check_resumable`, which refuses a run dir holding links before anything is written into it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nag.config.errors import MissingFileError, UserInputError
from nag.config.text import one_line
from nag.io.files import UnsafeFileError, is_real_dir, is_regular_file, load_json, load_yaml, strays_shown
from nag.io.output import write_json_atomic
from nag.runs.overrides import override_values
from nag.runs.stored_config import StoredConfig

CONFIG = Path(".hydra") / "config.yaml"
OVERRIDES = Path(".hydra") / "overrides.yaml"
HYDRA = Path(".hydra") / "hydra.yaml"
RESUME_SUBDIR = ".hydra/resume"
CHECKPOINTS = Path("checkpoints")
LAST = CHECKPOINTS / "last.ckpt"
BEST_PATTERN = "best-*.ckpt"
METRICS = Path("metrics.json")
FAILURE = Path("failure.json")
LOG = Path("train.log")
JOB = Path("job.json")
#: The ex-post samplers fitted on the run's codes (a flow's fit, reused by nag.evaluate, nag.compare, Run.sample).
SAMPLERS = Path("samplers")
#: TensorBoard's events (``conf/logger``'s save_dir).
TENSORBOARD = Path("tensorboard")

#: A failure reason or problem as shown in tables and summaries.
REASON_LIMIT = 300


@dataclass
class RunDir:
    """One run directory (module docstring). Reading is lazy and cached; nothing is read at construction."""

    path: Path
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of_checkpoint(cls, ckpt: str | Path) -> RunDir | None:
        """The run dir a checkpoint belongs to (``<run>/checkpoints/<name>.ckpt``), or None."""
        ckpt = Path(ckpt).resolve()
        return cls(ckpt.parent.parent) if ckpt.parent.name == CHECKPOINTS.name else None

    # --- layout ------------------------------------------------------------------------------------------

    def __truediv__(self, relative: str | Path) -> Path:
        return self.path / relative

    @property
    def is_run(self) -> bool:
        """Whether this is a training run's dir (it has a config file; ``.hydra/resume`` is not one)."""
        return is_regular_file(self.path / CONFIG) and self.path.name != "resume"

    @property
    def last_ckpt(self) -> Path | None:
        """``checkpoints/last.ckpt`` if it is a regular file (a link is not followed)."""
        path = self.path / LAST
        return path if is_regular_file(path) else None

    @property
    def best_ckpt(self) -> Path | None:
        """The newest ``checkpoints/best-*.ckpt`` that is a regular file, else ``last.ckpt``, else None."""
        folder = self.path / CHECKPOINTS
        best = []
        if is_real_dir(folder):
            for p in folder.glob(BEST_PATTERN):
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    best.append((st.st_mtime, p.name, p))
        return max(best)[2] if best else self.last_ckpt

    # --- reading (untrusted) -------------------------------------------------------------------------------

    def _read(self, name: str, fn: Any) -> Any:
        if name not in self._cache:
            try:
                self._cache[name] = (fn(), None)
            except (UserInputError, OSError) as e:
                self._cache[name] = (None, e)
        value, error = self._cache[name]
        if error is not None:
            raise error
        return value

    @property
    def overrides(self) -> list[str]:
        """The run's command-line overrides as text (labels, swept keys); [] without the file. Only read:
        ``resume=`` applies them, after :func:`nag.runs.overrides.check_stored`."""

        def read() -> list[str]:
            path = self.path / OVERRIDES
            if not os.path.lexists(path):
                return []
            data = load_yaml(path)
            if data is None:
                return []
            if not isinstance(data, list) or not all(isinstance(o, str) for o in data):
                raise UnsafeFileError(f"{path} is not a list of overrides (it holds a {type(data).__name__}).")
            return data

        return self._read("overrides", read)

    @property
    def config(self) -> StoredConfig:
        """``.hydra/config.yaml``, checked (:class:`~nag.runs.stored_config.StoredConfig`)."""

        def read() -> StoredConfig:
            path = self.path / CONFIG
            if not os.path.lexists(path):
                raise MissingFileError(f"{path} does not exist: {self.path} is not a run dir written by nag.train.")
            return StoredConfig.read(path)

        return self._read("config", read)

    def _json(self, relative: Path) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            path = self.path / relative
            if not os.path.lexists(path):
                return None
            data = load_json(path)
            if not isinstance(data, dict):
                raise UnsafeFileError(f"{path} holds a {type(data).__name__}, not a mapping.")
            return data

        return self._read(str(relative), read)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """``metrics.json`` (None when absent); its non-finite or out-of-range numbers read as None."""
        return self._json(METRICS)

    @property
    def failure(self) -> dict[str, Any] | None:
        return self._json(FAILURE)

    @property
    def problem(self) -> str:
        """Why this run dir cannot be read as it is ('' when it can): the first bad file, in one line."""
        for read in (lambda: self.overrides, lambda: self.config, lambda: self.metrics, lambda: self.failure):
            try:
                read()
            except (UserInputError, OSError) as e:
                return one_line(str(e), REASON_LIMIT)
        return ""

    @property
    def status(self) -> str:
        """``failed`` (a failure record), ``ok`` (finished: metrics), ``unreadable`` (a bad file: see
        :attr:`problem`) or ``incomplete`` (killed, or still running)."""
        try:
            if self.failure is not None:
                return "failed"
            done = self.metrics is not None
        except (UserInputError, OSError):
            return "unreadable"
        if self.problem:
            return "unreadable"
        return "ok" if done else "incomplete"

    @property
    def reason(self) -> str:
        """Why a failed run failed, or why an unreadable one cannot be read (one line)."""
        try:
            failure = self.failure
        except (UserInputError, OSError) as e:
            return one_line(str(e), REASON_LIMIT)
        if failure is not None:
            return one_line(str(failure.get("error", "")), REASON_LIMIT)
        return self.problem

    def label(self, keys: list[str] | None = None) -> str:
        """The run's overrides (only ``keys`` when given), e.g. ``matching=none prior.mean=-3``."""
        try:
            overrides = self.overrides
        except (UserInputError, OSError):
            return self.path.name
        values = override_values(overrides)
        shown = [f"{k}={values[k]}" for k in keys if k in values] if keys is not None else overrides
        return " ".join(shown) or self.path.name

    def check_resumable(self, given: str) -> Path:
        """Before ``resume=`` writes into this dir (Hydra appends to ``train.log``, Lightning writes events and
        checkpoints, each following links): the dir is a real folder with no link anywhere below it, and holds
        its overrides and ``last.ckpt`` as regular files; nothing in it but regular files and folders (a named
        pipe at ``train.log`` would block Hydra's log writer). Returns ``last.ckpt``.

        Args:
            given: The dir as the user typed it, for messages.
        """
        if os.path.islink(self.path):
            raise UnsafeFileError(f"resume={given}: {self.path} is a symbolic link; give the run dir itself.")
        if not is_real_dir(self.path):
            raise MissingFileError(
                f"resume={given}: {self.path} does not exist as a folder; give the directory of a "
                "run started by python -m nag.train."
            )
        shown = strays_shown(self.path)
        if shown:
            raise UnsafeFileError(
                f"resume={given}: the run dir holds symbolic links or other files that are not regular ({shown}); "
                "resuming writes the log, events and checkpoints into it, and would write through a link or block "
                "on a named pipe. nag makes only regular files and folders in a run dir: remove them (or resume a "
                "copy made with cp -rL)."
            )
        if not os.path.lexists(self.path / OVERRIDES):
            raise MissingFileError(
                f"resume={given}: {self.path / OVERRIDES} does not exist; give the directory of a run "
                "started by python -m nag.train (it holds .hydra/ and checkpoints/)."
            )
        last = self.path / LAST
        if not is_regular_file(last):
            raise MissingFileError(
                f"resume={given}: the run has no {LAST} to continue from (it stopped before its first checkpoint); "
                "start it again instead."
            )
        return last

    # --- writing (nag's own records) -----------------------------------------------------------------------

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.path / METRICS, metrics)

    def write_failure(self, error: BaseException) -> None:
        write_json_atomic(
            self.path / FAILURE,
            {
                "status": "failed",
                "error": str(error),
                "type": type(error).__name__,
                "step": getattr(error, "global_step", None),
            },
        )

    def clear_failure(self) -> None:
        """A failed run resumed successfully has no failure record (a link there is removed, not followed)."""
        (self.path / FAILURE).unlink(missing_ok=True)

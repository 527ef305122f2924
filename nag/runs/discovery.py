"""Finding runs under a folder (a run dir, a sweep dir, or any folder above them) and what varies between them.

The folder tree is untrusted: it is walked without following links and with a bound on its size, so a link
loop or a huge tree cannot hang discovery.
"""

from __future__ import annotations

import stat
from pathlib import Path

from nag.config.errors import UserInputError
from nag.io.files import walk
from nag.runs.overrides import override_values
from nag.runs.run_dir import CONFIG, RunDir


def job_order(name: str) -> tuple[int, int, str]:
    """Sweep jobs by number (``2`` before ``10``), other names after them; only ASCII digits are numbers."""
    return (0, int(name), "") if name.isascii() and name.isdigit() else (1, 0, name)


def discover(root: Path) -> list[RunDir]:
    """Every run under ``root`` (``root`` itself if it is one), in sweep job order, then by path.

    The folder tree is walked without following links and with a bound on its size, so a link loop or a huge
    tree cannot hang it."""
    if not root.is_dir():
        raise UserInputError(f"{root} is not a directory; give a run dir, a sweep dir or a folder above them.")
    top = RunDir(root)
    if top.is_run:
        return [top]
    runs = []
    for path, st in walk(root):
        if path.name == CONFIG.name and path.parent.name == CONFIG.parent.name and stat.S_ISREG(st.st_mode):
            run = RunDir(path.parent.parent)
            if run.is_run:
                runs.append(run)

    def order(run: RunDir) -> tuple:
        return tuple(job_order(p) for p in run.path.relative_to(root).parts)

    return sorted(runs, key=order)


def swept_keys(runs: list[RunDir]) -> list[str]:
    """The override keys whose value differs between runs (or that only some runs set), in first-seen order.
    Runs whose overrides cannot be read count as setting none."""
    values = []
    for run in runs:
        try:
            values.append(override_values(run.overrides))
        except (UserInputError, OSError):
            values.append({})
    keys = list(dict.fromkeys(k for v in values for k in v))
    return [k for k in keys if len({v.get(k) for v in values}) > 1]

"""The house keeps its shape: arrows run one way between the layers, entry points stay at the top, and no module
grows past what one sitting reads. Checked on the source (ast), so a new import that crosses a layer fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "nag"

#: What each layer may import of nag (besides itself). The entry points and the benchmark may import anything.
ALLOWED = {
    "config": set(),
    "io": {"config"},
    "model": {"config"},
    "data": {"config", "io"},
    "runs": {"config", "io", "model", "data"},  # the allow-list checks classes against their base classes
    "metrics": {"config", "io", "model", "runs"},  # weights from disk come in through the checkpoint checks
    "samplers": {"config", "io", "model", "runs"},
    "training": {"config", "io", "model", "runs", "data", "metrics"},
    "analysis": {"config", "io", "model", "runs", "data", "metrics", "samplers", "training"},
}
ENTRY_POINTS = {"__init__.py", "train.py", "evaluate.py", "report.py", "compare.py", "sample.py"}
MAX_LINES = 400  # a sanity limit: cohesion decides a module's size, not a count (#30)


def _imports(path: Path) -> list[str]:
    """The nag sub-package of every ``nag.*`` import in ``path``, at module level or inside a function."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nag" and len(parts) > 1:
                out.append(parts[1])
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    layer = rel.parts[0] if len(rel.parts) > 1 else None
    if layer not in ALLOWED:
        return  # an entry point or the benchmark
    for target in _imports(path):
        if target == layer or target not in {*ALLOWED, "train", "evaluate", "report", "compare", "bench"}:
            continue
        assert target in ALLOWED[layer], f"nag/{rel} imports nag.{target}: {layer} may import only {ALLOWED[layer]}"


def test_only_entry_points_sit_at_the_top() -> None:
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == ENTRY_POINTS, f"modules at the top that are not python -m entry points: {top - ENTRY_POINTS}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_reads_in_one_sitting(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"nag/{path.relative_to(PACKAGE)} has {n} lines; split it at a seam"

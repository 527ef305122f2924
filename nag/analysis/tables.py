"""The cells and markdown tables of every comparison file (summary.*, samplers.*, lambda.md): one formatter, so a
number reads the same in each and a non-finite one is a blank cell, never ``nan`` passed off as a value."""

from __future__ import annotations

import math
from typing import Any

from nag.config.text import markdown_cell


def cell(value: Any, digits: int = 4) -> str:
    """A float to ``digits`` significant digits (blank when not finite), None blank, anything else as text."""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else ""
    return "" if value is None else str(value)


def fixed(value: Any, digits: int) -> str:
    """A float to ``digits`` decimals (the README's short tables); ``–`` when missing or not finite."""
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "–"


def markdown_table(cols: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The lines of a markdown table of ``rows`` (dicts) in the columns ``cols``; every cell and header, which may
    quote a run dir (a job's overrides, a failure reason), through :func:`nag.config.text.markdown_cell`."""
    lines = ["| " + " | ".join(markdown_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(markdown_cell(cell(r.get(c))) for c in cols) + " |" for r in rows]

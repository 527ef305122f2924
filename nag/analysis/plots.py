"""Matplotlib figures of a sweep: a labelled table of sample grids, and a metric against a swept value.

Each returns the PNG's bytes, for the caller's atomic, link-proof writer (``savefig`` to a path follows links).
Text from run dirs (override values, failure reasons) is drawn as it is: ``parse_math=False``, so a ``$`` in it
is a dollar sign, not the start of a formula matplotlib would fail to parse.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def _show(ax: plt.Axes, grid: Tensor | None, title: str, note: str = "") -> None:
    ax.axis("off")
    ax.set_title(title, fontsize=8, parse_math=False)
    if grid is not None:
        ax.imshow(grid.permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
    else:
        # Wrapped here, not by matplotlib: its wrapping measures the text as maths whatever parse_math says.
        ax.text(
            0.5,
            0.5,
            textwrap.fill(note or "no samples", 28),
            ha="center",
            va="center",
            fontsize=9,
            color="firebrick",
            transform=ax.transAxes,
            parse_math=False,
        )


def sample_table(
    grids: Sequence[Tensor | None],
    labels: Sequence[dict[str, str]],
    keys: Sequence[str],
    notes: Sequence[str],
    panel: float = 2.6,
) -> bytes:
    """Each job's sample grid, labelled with its swept values. With exactly two swept keys, a table (rows the
    first key's values, columns the second's); otherwise panels in rows of four titled with every swept value.

    Args:
        grids: One ``(3, H, W)`` grid per job, or None (failed or without checkpoint).
        labels: Each job's swept values, ``{key: value}``.
        keys: The swept keys.
        notes: What to write in a panel without a grid (e.g. "failed: ...").
    """
    if len(keys) == 2:
        rows = list(dict.fromkeys(lab.get(keys[0], "") for lab in labels))
        cols = list(dict.fromkeys(lab.get(keys[1], "") for lab in labels))
        fig, axes = plt.subplots(
            len(rows), len(cols), figsize=(panel * len(cols), panel * len(rows) + 0.4), squeeze=False
        )
        for ax in axes.flat:
            ax.axis("off")
        for grid, lab, note in zip(grids, labels, notes, strict=True):
            r, c = rows.index(lab.get(keys[0], "")), cols.index(lab.get(keys[1], ""))
            _show(axes[r][c], grid, f"{keys[0]}={lab.get(keys[0], '')}\n{keys[1]}={lab.get(keys[1], '')}", note)
    else:
        n_cols = min(4, len(grids)) or 1
        n_rows = -(-len(grids) // n_cols) or 1
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel * n_cols, panel * n_rows + 0.4), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, grid, lab, note in zip(axes.flat, grids, labels, notes, strict=False):
            _show(ax, grid, "\n".join(f"{k}={lab.get(k, '')}" for k in keys) or "run", note)
    return _png(fig)


def metric_vs_key(rows: Sequence[dict[str, object]], metric: str, key: str, group_keys: Sequence[str]) -> bytes:
    """``metric`` against the numeric values of ``key``, one line per combination of ``group_keys``."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        x, y = row.get(key), row.get(metric)
        if not isinstance(y, float) or x in (None, ""):
            continue
        group = ", ".join(f"{k}={row.get(k, '')}" for k in group_keys) or metric
        lines.setdefault(group, []).append((float(str(x)), y))
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, points in lines.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=group.replace("$", r"\$"))  # legends have no parse_math
    ax.set_xlabel(key, parse_math=False)
    ax.set_ylabel(metric, parse_math=False)
    ax.grid(alpha=0.3)
    if len(lines) > 1 or group_keys:
        ax.legend(fontsize=8)
    return _png(fig)


def _png(fig: plt.Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()

"""A sampler table's numbers over training seeds (``nag.compare --samplers`` on a sweep of ``seed``):
``compare/over_seeds.md`` and ``over_seeds.csv``.

One training run is one draw: the moonshot's rows differ by a point or two of attribute gap between settings, which
is the size of what a seed alone moves. When ``seed`` is among a sweep's swept keys, the jobs that differ only in
their seed are grouped (per sampler) and each number is given as its mean, standard deviation (n − 1) and range
over the seeds, beside each attribute's signed gap (samples − real faces, percentage points). A result reproduces
when a new run of the same command falls inside the stated range; a difference between two settings is a finding
when it is larger than both settings' spreads.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from nag.analysis.tables import fixed, markdown_table

#: The swept key whose jobs are pooled.
SEED_KEY = "seed"
#: The tolerance of the moonshot's goal: an attribute is *within* when its frequency gap is at most this.
WITHIN = 0.02
#: The numbers summarised (a row's columns; ``within`` counted here), in the table's order.
NUMBERS = (
    "fid",
    "fid_inf",
    "kid",
    "precision",
    "recall",
    "sample_swd",
    "freq_gap",
    "judge_gap_spread",
    "within",
    "psnr",
)


def within_count(frequency: dict[str, float], real: dict[str, float], tol: float = WITHIN) -> int | None:
    """How many judged attributes' sample frequency is within ``tol`` of the real faces'; None without any."""
    shared = [n for n in frequency if n in real]
    if not shared:
        return None
    return sum(abs(frequency[n] - real[n]) <= tol + 1e-12 for n in shared)


def _stats(values: list[float]) -> dict[str, Any]:
    vals = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(float(v))]
    if not vals:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    sd = statistics.stdev(vals) if len(vals) > 1 else None
    return {"n": len(vals), "mean": statistics.fmean(vals), "sd": sd, "min": min(vals), "max": max(vals)}


def over_seeds(table: Any, key: str = SEED_KEY) -> list[dict[str, Any]]:
    """Per (the other swept keys' values, sampler): the seeds and each number's statistics (:data:`NUMBERS`, and
    ``gap:<attribute>``, the signed frequency gap in points); [] when ``key`` is not swept."""
    if key not in table.keys:
        return []
    others = [k for k in table.keys if k != key]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in table.rows:
        groups.setdefault((*(str(r.get(k, "")) for k in others), r["sampler"]), []).append(r)
    out = []
    for group, rows in groups.items():
        entry: dict[str, Any] = {**dict(zip(others, group[:-1], strict=True)), "sampler": group[-1]}
        entry["seeds"] = [r.get(key) for r in rows]
        for number in NUMBERS:
            if number == "within":
                values = [within_count(r.get("frequency") or {}, table.real_frequency) for r in rows]
            else:
                values = [r.get(number) for r in rows]
            entry[number] = _stats([v for v in values if v is not None])
        for name, real in table.real_frequency.items():
            gaps = [100 * (r["frequency"][name] - real) for r in rows if name in (r.get("frequency") or {})]
            entry[f"gap:{name}"] = _stats(gaps)
        out.append(entry)
    return out


def _f(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, a mean of +1, +3 and −4 shown as 0.0 rather than −0.0."""
    return fixed(0.0 if abs(value) < 0.5 * 10**-digits else float(value), digits)


def _shown(s: dict[str, Any], digits: int, scale: float = 1.0) -> str:
    """``mean ± sd (min–max)``; one seed: its value; none: ``–``."""
    if not s["n"]:
        return "–"
    mean, low, high = (scale * s[k] for k in ("mean", "min", "max"))
    if s["n"] == 1:
        return _f(mean, digits)
    return f"{_f(mean, digits)} ± {_f(scale * s['sd'], digits)} ({_f(low, digits)}–{_f(high, digits)})"


#: How each number is shown: its decimals and scale (the gap in percentage points).
_FORMAT = {
    "kid": (3, 1.0),
    "precision": (3, 1.0),
    "recall": (3, 1.0),
    "freq_gap": (2, 100.0),
    "judge_gap_spread": (2, 100.0),
    "psnr": (2, 1.0),
}


def markdown(entries: list[dict[str, Any]], table: Any, key: str = SEED_KEY) -> str:
    """Two tables: the numbers per group and sampler, then each attribute's signed gap."""
    others = [k for k in table.keys if k != key]
    numbers = [n for n in NUMBERS if any(e[n]["n"] for e in entries)]
    head = {
        "freq_gap": "mean gap (pts)",
        "judge_gap_spread": "judges' spread (pts)",
        "within": f"within {100 * WITHIN:g} pts",
    }
    rows = []
    for e in entries:
        row = {**{k: e[k] for k in others}, "sampler": e["sampler"], "seeds": ", ".join(map(str, e["seeds"]))}
        for n in numbers:
            digits, scale = _FORMAT.get(n, (1, 1.0))
            row[head.get(n, n)] = _shown(e[n], digits, scale)
        rows.append(row)
    cols = [*others, "sampler", "seeds", *(head.get(n, n) for n in numbers)]
    lines = [f"Over the seeds ({key}): mean ± standard deviation (range).", "", *markdown_table(cols, rows)]
    names = list(table.real_frequency)
    if names:
        labels = [" ".join([*(str(e[k]) for k in others), e["sampler"]]) for e in entries]
        gap_rows = [
            {"attribute": n, "real %": fixed(100 * table.real_frequency[n], 1)}
            | {label: _shown(e[f"gap:{n}"], 1) for label, e in zip(labels, entries, strict=True)}
            for n in names
        ]
        lines += [
            "",
            "Each attribute's gap, samples − real faces (percentage points), over the seeds:",
            "",
            *markdown_table(["attribute", "real %", *labels], gap_rows),
        ]
    return "\n".join(lines) + "\n"


def csv_rows(entries: list[dict[str, Any]], table: Any, key: str = SEED_KEY) -> tuple[list[str], list[list[Any]]]:
    """One row per group, sampler and number: n, mean, sd, min, max (``gap:<attribute>`` in points; the rest as in
    ``samplers.csv``, ``freq_gap`` a fraction)."""
    others = [k for k in table.keys if k != key]
    cols = [*others, "sampler", "number", "n", "mean", "sd", "min", "max"]
    rows = []
    for e in entries:
        for number in [*NUMBERS, *(f"gap:{n}" for n in table.real_frequency)]:
            s = e[number]
            rows.append([*(e[k] for k in others), e["sampler"], number, s["n"], s["mean"], s["sd"], s["min"], s["max"]])
    return cols, rows

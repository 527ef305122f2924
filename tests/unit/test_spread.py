"""A sampler table's numbers over training seeds (nag.analysis.spread): grouped by the other swept keys and the
sampler, with known means, standard deviations (n − 1), ranges and signed attribute gaps, written by nag.compare's
own writer into compare/over_seeds.{md,csv}."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nag.analysis.benchmark import SamplerTable
from nag.analysis.spread import csv_rows, markdown, over_seeds, within_count


def _row(job: int, lr: str, seed: int, sampler: str, fid: float, hat: float, smile: float) -> dict:
    return {
        "job": str(job),
        "lr": lr,
        "seed": seed,
        "sampler": sampler,
        "fid": fid,
        "kid": None,
        "freq_gap": (abs(hat - 0.05) + abs(smile - 0.5)) / 2,
        "psnr": 25.0,
        "frequency": {"Hat": hat, "Smiling": smile},
    }


def _table() -> SamplerTable:
    rows = [
        _row(0, "1e-3", 1, "gmm", 90.0, 0.06, 0.50),
        _row(0, "1e-3", 1, "kde", 95.0, 0.10, 0.45),
        _row(1, "1e-3", 2, "gmm", 92.0, 0.08, 0.53),
        _row(1, "1e-3", 2, "kde", 97.0, 0.05, 0.40),
        _row(2, "1e-3", 3, "gmm", 97.0, 0.01, 0.515),
        _row(2, "1e-3", 3, "kde", 96.0, 0.06, 0.49),
        _row(3, "1e-4", 1, "gmm", 120.0, 0.30, 0.90),  # another setting: its own group
    ]
    return SamplerTable(rows, ["lr", "seed"], real_frequency={"Hat": 0.05, "Smiling": 0.5})


def test_within_counts_attributes_at_the_tolerance_inclusive_and_only_the_judged_ones() -> None:
    real = {"Hat": 0.05, "Smiling": 0.5, "Bald": 0.07}
    assert within_count({"Hat": 0.07, "Smiling": 0.52}, real) == 2  # exactly 2 points: within
    assert within_count({"Hat": 0.0701, "Smiling": 0.4799}, real) == 0
    assert within_count({"Hat": 0.05, "Pale_Skin": 0.3}, real) == 1, "an attribute the real side lacks: not counted"
    assert within_count({}, real) is None


def test_jobs_that_differ_only_in_their_seed_are_pooled_per_sampler() -> None:
    entries = over_seeds(_table())
    assert [(e["lr"], e["sampler"], e["seeds"]) for e in entries] == [
        ("1e-3", "gmm", [1, 2, 3]),
        ("1e-3", "kde", [1, 2, 3]),
        ("1e-4", "gmm", [1]),
    ]
    gmm = entries[0]
    assert gmm["fid"]["n"] == 3 and gmm["fid"]["mean"] == pytest.approx(93.0)
    assert gmm["fid"]["sd"] == pytest.approx(((9 + 1 + 16) / 2) ** 0.5), "n − 1 in the standard deviation"
    assert (gmm["fid"]["min"], gmm["fid"]["max"]) == (90.0, 97.0)
    assert gmm["kid"] == {"n": 0, "mean": None, "sd": None, "min": None, "max": None}, "not measured: not zero"
    # Hat 6, 8, 1 % against 5 %: signed gaps +1, +3, −4 points (a mean of absolute values would read 2.67)
    assert gmm["gap:Hat"]["mean"] == pytest.approx(0.0) and gmm["gap:Hat"]["min"] == pytest.approx(-4.0)
    assert gmm["gap:Smiling"]["max"] == pytest.approx(3.0)
    # within 2 points: seed 1 both (+1, 0), seed 2 neither (+3, +3), seed 3 Smiling only (−4; +1.5)
    assert gmm["within"] == {"n": 3, "mean": 1.0, "sd": 1.0, "min": 0, "max": 2}
    assert entries[2]["fid"]["sd"] is None, "one seed: no spread"


def test_no_seed_key_no_spread_table() -> None:
    table = _table()
    table.keys = ["lr"]
    assert over_seeds(table) == []


def test_the_tables_show_mean_sd_and_range_and_the_signed_gaps() -> None:
    table = _table()
    text = markdown(over_seeds(table), table)
    gmm = next(line for line in text.splitlines() if line.startswith("| 1e-3 | gmm |"))
    assert "| 1, 2, 3 | 93.0 ± 3.6 (90.0–97.0) |" in gmm
    assert "| 2.08 ± 1.38 (0.50–3.00) | 1.0 ± 1.0 (0.0–2.0) | 25.00 ± 0.00 (25.00–25.00) |" in gmm, "gap in points"
    assert "| 1e-4 | gmm | 1 | 120.0 |" in text, "one seed: the value alone"
    hat = next(line for line in text.splitlines() if line.startswith("| Hat |"))
    assert hat.startswith("| Hat | 5.0 | 0.0 ± 3.6 (-4.0–3.0) |")
    cols, rows = csv_rows(over_seeds(table), table)
    assert cols == ["lr", "sampler", "number", "n", "mean", "sd", "min", "max"]
    assert rows[0][:5] == ["1e-3", "gmm", "fid", 3, 93.0]
    assert len(rows) == 3 * (10 + 2), "every number and both attributes, per group"


def test_compare_writes_the_spread_files_beside_the_sampler_table(tmp_path: Path) -> None:
    from nag.compare import write_samplers
    from nag.io.output import OutputDir

    table = _table()
    files = write_samplers(table, OutputDir(tmp_path / "compare"))
    assert tmp_path / "compare" / "over_seeds.md" in files and tmp_path / "compare" / "over_seeds.csv" in files
    rows = list(csv.DictReader((tmp_path / "compare" / "over_seeds.csv").open()))
    hat = next(r for r in rows if r["sampler"] == "kde" and r["number"] == "gap:Hat")
    assert (hat["n"], float(hat["mean"]), float(hat["max"])) == ("3", pytest.approx(2.0), pytest.approx(5.0))
    table.keys = ["lr"]
    out = tmp_path / "plain"
    write_samplers(table, OutputDir(out))
    assert (out / "samplers.csv").is_file() and not (out / "over_seeds.md").exists()


class _Brightness:
    """A judge that sees an attribute where a channel's mean passes a threshold: its answers are known."""

    @staticmethod
    def make(thresholds: list[float], accuracy: list[float]):  # noqa: ANN205
        import torch

        from nag.analysis.attributes import AttributeClassifier

        class Judge(AttributeClassifier):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x.mean((2, 3))[:, : len(thresholds)] - torch.tensor(thresholds)

        judge = Judge(len(thresholds))
        judge.balanced_accuracy.copy_(torch.tensor(accuracy, dtype=torch.float64))
        return judge


def test_several_judges_give_each_attributes_range_of_the_gap_on_the_same_samples() -> None:
    import torch

    from nag.analysis.benchmark import Attributes

    level = torch.linspace(0.05, 0.95, 10)  # ten images, each one grey level (all three channels)
    real = level.view(10, 1, 1, 1).expand(10, 3, 4, 4).contiguous()
    samples = (level.view(10, 1, 1, 1) * 0.5).expand(10, 3, 4, 4).contiguous()  # darker: 0.025 ... 0.475
    lead = _Brightness.make([0.5, 0.3, 0.2], [0.95, 0.95, 0.5])  # the third: not judged by the lead
    other = _Brightness.make([0.4, 0.3, 0.2], [0.95, 0.5, 0.95])  # the second: not judged by this one
    attrs = Attributes(lead, ("A", "B", "C"), lead.predict(real), ((other, other.predict(real)),))
    gaps = attrs.gaps(samples)
    # A: lead: samples 0 of 10 past 0.5, real 5 -> -0.5; other: samples 2 past 0.4, real 6 -> -0.4: range 0.1
    # B: only the lead sees it: no range; C: the lead cannot see it: not reported
    assert gaps["judge_spread"] == {"A": pytest.approx(0.1)}
    other = _Brightness.make([0.48, 0.3, 0.2], [0.95, 0.95, 0.95])
    attrs = Attributes(lead, ("A", "B", "C"), lead.predict(real), ((other, other.predict(real)),))
    # A: samples 0 past 0.48, real 5 -> -0.5 as the lead: range 0; B at 0.3 for both (4 of 10, 7 of 10): range 0
    assert attrs.gaps(samples)["judge_spread"] == {"A": pytest.approx(0.0), "B": pytest.approx(0.0)}
    third = _Brightness.make([0.3, 0.1, 0.2], [0.95, 0.95, 0.95])
    attrs = Attributes(
        lead, ("A", "B", "C"), lead.predict(real), ((other, other.predict(real)), (third, third.predict(real)))
    )
    gaps = attrs.gaps(samples)
    # A at 0.3: samples 4, real 7 -> -0.3 against -0.5 and -0.5: range 0.2
    # B at 0.1: samples 8, real 9 -> -0.1 against -0.3 and -0.3: range 0.2
    assert gaps["judge_spread"] == {"A": pytest.approx(0.2), "B": pytest.approx(0.2)}
    assert gaps["judge_gap_spread"] == pytest.approx(0.2)
    assert gaps["freq_gap"] == pytest.approx((0.5 + 0.3) / 2), "the lead judge alone gives the gaps"
    assert "judge_spread" not in Attributes(lead, ("A", "B", "C"), lead.predict(real)).gaps(samples), "one judge"


def test_the_judges_column_and_file_appear_only_when_several_judges_scored() -> None:
    from nag.analysis.benchmark import COLUMNS, columns, csv_rows, judge_rows, markdown

    table = _table()
    assert columns(table) == list(COLUMNS) and judge_rows(table)[1] == []
    table.rows[1] |= {"judge_gap_spread": 0.03, "judge_spread": {"Hat": 0.02, "Smiling": 0.04}}
    assert columns(table) == [*COLUMNS, "judge_gap_spread"]
    cols, rows = csv_rows(table)
    assert cols[-1] == "judge_gap_spread" and rows[1][-1] == 0.03 and rows[0][-1] is None
    assert "| judge_gap_spread |" in markdown(table).splitlines()[0]
    cols, rows = judge_rows(table)
    assert cols == ["job", "lr", "seed", "sampler", "Hat", "Smiling"]
    assert rows == [["0", "1e-3", 1, "kde", 0.02, 0.04]], "only the rows several judges scored"


def test_numbers_round_to_their_decimals_and_a_rounded_zero_has_no_sign() -> None:
    from nag.analysis.spread import _f

    assert [_f(v, 1) for v in (-0.048, -0.04, 0.05, 0.12, -0.12)] == ["0.0", "0.0", "0.1", "0.1", "-0.1"]
    assert _f(-0.0004, 3) == "0.000" and _f(-0.0006, 3) == "-0.001"


def test_the_spread_tables_headers() -> None:
    table = _table()
    table.rows[0]["judge_gap_spread"] = 0.01
    head = markdown(over_seeds(table), table).splitlines()[2]
    assert head == ("| lr | sampler | seeds | fid | mean gap (pts) | judges' spread (pts) | within 2 pts | psnr |")


def test_statistics_skip_non_finite_values_and_two_seeds_have_a_spread() -> None:
    from nag.analysis.spread import _stats

    assert _stats([1.0, float("nan"), 3.0, float("inf")]) == {"n": 2, "mean": 2.0, "sd": 2**0.5, "min": 1.0, "max": 3.0}
    table = _table()
    del table.rows[6]["lr"]  # a job without the other key: grouped under an empty value
    assert [e["lr"] for e in over_seeds(table)] == ["1e-3", "1e-3", ""]


def test_groups_keep_every_other_key_and_the_sampler_with_two_other_keys() -> None:
    table = _table()
    for r in table.rows:
        r["arm"] = "swd"
    table.keys = ["lr", "arm", "seed"]
    entries = over_seeds(table)
    assert [(e["lr"], e["arm"], e["sampler"]) for e in entries] == [
        ("1e-3", "swd", "gmm"),
        ("1e-3", "swd", "kde"),
        ("1e-4", "swd", "gmm"),
    ]

"""The linear probe of nag.analysis.rare reads what the codes hold, and only that."""

from __future__ import annotations

import torch

from nag.analysis.rare import RareFeatures, probe_balanced_accuracy


def test_the_probe_reads_a_linear_attribute_and_not_an_independent_one() -> None:
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(2000, 8, generator=g)
    # A rare attribute (about 3 %) that is a noisy half-space of the codes, one independent of them, one constant.
    rare = (codes[:, 0] + 0.5 * codes[:, 3] + 0.7 * torch.randn(2000, generator=g) > 2.3).float()
    noise = (torch.rand(2000, generator=g) < 0.3).float()
    labels = torch.stack([rare, noise, torch.zeros(2000)], 1)
    assert 0.01 < rare.mean() < 0.06
    bacc = probe_balanced_accuracy(codes[:1500], labels[:1500], codes[1500:], labels[1500:])
    # An unweighted probe mostly answers "no" (0.69 here); balanced weights read it (0.80).
    assert bacc[0] > 0.75, "balanced weights: a rare attribute is read, not answered 'no' every time"
    assert abs(bacc[1] - 0.5) < 0.08, "nothing to read: chance"
    assert bacc[2] is None, "one class only"


def test_rows_carry_each_stage_and_each_samplers_frequency() -> None:
    rf = RareFeatures(("Hat", "Sunglasses"), [0.05, 0.03], [0.9, None], [0.8, None], [0.04, 0.0])
    rows = rf.rows({"job": "3", "arm": "swd"}, {"prior": {"Hat": 0.01, "Sunglasses": 0.0}, "flow": {"Hat": 0.03}})
    assert rows == [
        {
            "job": "3",
            "arm": "swd",
            "attribute": "Hat",
            "real": 0.05,
            "probe_bacc": 0.9,
            "kept": 0.8,
            "reconstruction": 0.04,
            "prior": 0.01,
            "flow": 0.03,
        },
        {
            "job": "3",
            "arm": "swd",
            "attribute": "Sunglasses",
            "real": 0.03,
            "probe_bacc": None,
            "kept": None,
            "reconstruction": 0.0,
            "prior": 0.0,
            "flow": None,
        },
    ]


def test_one_class_in_either_split_is_none_and_the_next_attribute_is_still_read() -> None:
    """An attribute absent from the test faces only (present in training) has nothing to score; the attribute
    after it is still probed (mutmut: `or` → `and`, `continue` → `break` both survived the test above)."""
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(400, 4, generator=g)
    linear = (codes[:, 0] > 0).float()
    only_in_training = torch.zeros(400)
    only_in_training[:20] = 1  # all within the first 300 (the training split)
    bacc = probe_balanced_accuracy(
        codes[:300],
        torch.stack([only_in_training, linear], 1)[:300],
        codes[300:],
        torch.stack([only_in_training, linear], 1)[300:],
    )
    assert bacc[0] is None and bacc[1] is not None and bacc[1] > 0.9

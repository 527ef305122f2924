"""Attribute directions, edits and the attribute classifier, on known answers and a real tiny dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from nag.analysis.attributes import (
    JUDGED_AT,
    AttributeClassifier,
    attribute_metrics,
    balanced_accuracy,
    load_or_train_classifier,
)
from nag.data.synthetic import SyntheticFaces
from nag.model.latent_edit import EDIT_STEPS, MIN_PER_CLASS, attribute_directions, edited_codes


def test_directions_are_the_difference_of_class_means() -> None:
    g = torch.Generator().manual_seed(0)
    n, d = 400, 6
    attributes = (torch.rand(n, 3, generator=g) < torch.tensor([0.3, 0.5, 0.005])).float()  # the third is rare
    shift = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, -1.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    codes = torch.randn(n, d, generator=g) * 0.01 + attributes @ shift  # each attribute moves the code by its row
    directions = attribute_directions(codes, attributes, ["A", "B", "rare"])
    assert set(directions) == {"A", "B"}, f"fewer than {MIN_PER_CLASS} faces with 'rare': no direction"
    torch.testing.assert_close(directions["A"], shift[0], atol=0.05, rtol=0)
    torch.testing.assert_close(directions["B"], shift[1], atol=0.05, rtol=0)


def test_edited_codes_move_by_each_step() -> None:
    z, d = torch.randn(3, 4), torch.randn(4)
    e = edited_codes(z, d)  # (3, S, 4)
    assert e.shape == (3, len(EDIT_STEPS), 4)
    for s, step in enumerate(EDIT_STEPS):
        torch.testing.assert_close(e[:, s], z + step * d)


@pytest.fixture(scope="module")
def tiny_faces(cache_dir: Path) -> SyntheticFaces:
    return SyntheticFaces(n_train=512, n_val=64, n_test=128, image_size=16, batch_size=16, cache_dir=str(cache_dir))


def test_classifier_is_trained_once_and_cached(tiny_faces, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        first = load_or_train_classifier(tiny_faces, tmp_path, epochs=12)
    assert "training the attribute classifier" in caplog.text
    (cached,) = tmp_path.glob("classifier-synthetic-train-*.pt")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = load_or_train_classifier(tiny_faces, tmp_path, epochs=12)
    assert "training" not in caplog.text, "the second call reads the cache"
    x, y = tiny_faces.fixed_batch("test", 128)
    assert torch.equal(first.predict(x), again.predict(x))
    # Its held-out balanced accuracy is measured on the test split and travels with the cached weights.
    torch.testing.assert_close(first.balanced_accuracy, balanced_accuracy(first.predict(x), y), equal_nan=True)
    assert torch.equal(again.balanced_accuracy.nan_to_num(-1), first.balanced_accuracy.nan_to_num(-1))
    assert first.judged().tolist() == [b >= JUDGED_AT for b in first.balanced_accuracy.nan_to_num(0).tolist()]
    # It learned something even from 512 16-px faces: it sees the colours of skin and hair, which are large.
    seen = {n for n, ok in zip(tiny_faces.attribute_names, first.judged(), strict=True) if ok}
    assert {"Dark_Skin", "Black_Hair", "Blond_Hair"} <= seen, first.balanced_accuracy
    cached.write_bytes(b"damaged")
    with caplog.at_level(logging.WARNING):
        load_or_train_classifier(tiny_faces, tmp_path, epochs=12)
    assert "unreadable" in caplog.text


def test_balanced_accuracy_is_the_mean_of_both_classes_rates() -> None:
    labels = torch.tensor([[1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    pred = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]])
    got = balanced_accuracy(pred, labels)
    # attribute 0: TPR 1/2, TNR 2/2; attribute 1: no positives (nothing to balance); attribute 2: TPR 0, TNR 3/3
    assert got[0].item() == 0.75 and got[1].isnan() and got[2].item() == 0.5
    rare = torch.zeros(100, 1)
    rare[:5] = 1
    assert balanced_accuracy(torch.zeros(100, 1), rare).item() == 0.5  # "never" is chance, not 95 %


def test_an_attribute_the_judge_cannot_see_is_not_scored(tiny_faces, tmp_path: Path) -> None:
    """Below the threshold an attribute leaves the gap, the frequencies, the kept fractions and the edits, and is
    listed as not judged; the benchmark's gaps and their worst attribute skip it too."""
    from nag.analysis.benchmark import Attributes

    clf = load_or_train_classifier(tiny_faces, tmp_path, epochs=12)
    names = list(tiny_faces.attribute_names)
    blind = names.index("Long_Hair")
    clf.balanced_accuracy.fill_(1.0)
    clf.balanced_accuracy[blind] = JUDGED_AT - 0.01
    x, y = tiny_faces.fixed_batch("test", 128)
    gray = torch.full_like(x, 0.5)
    m = attribute_metrics(clf, names, x, y, reconstructions=gray, samples=gray, model=_Identity(), directions={})
    assert m["not_judged"] == ["Long_Hair"] and "Long_Hair" not in m["frequency"]
    assert "Long_Hair" not in m["reconstruction_kept"] and "Long_Hair" not in m["reconstruction_agreement"]
    p_real, p_gray = clf.predict(x).float().mean(0), clf.predict(gray).float().mean(0)
    keep = [i for i in range(len(names)) if i != blind]
    assert m["frequency_gap"] == pytest.approx(float((p_gray - p_real).abs()[keep].mean()))
    edits = attribute_metrics(clf, names, x, y, x, x, _Identity(), {"Long_Hair": x[0].flatten()})["edit"]
    assert edits == {}
    attrs = Attributes(clf, tuple(names), clf.predict(x))
    gaps = attrs.gaps(gray)
    assert gaps["max_gap_attr"] != "Long_Hair" and "Long_Hair" not in gaps["frequency"]
    assert gaps["freq_gap"] == pytest.approx(m["frequency_gap"])
    clf.balanced_accuracy.fill_(0.5)
    assert attrs.gaps(gray)["freq_gap"] is None  # a judge that sees nothing scores nothing


class _Identity(torch.nn.Module):
    """An 'autoencoder' whose codes are the flattened images (edits move pixels directly)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 3, 16, 16)


def test_attribute_metrics_on_known_cases(tiny_faces, tmp_path: Path) -> None:
    clf: AttributeClassifier = load_or_train_classifier(tiny_faces, tmp_path, epochs=12)
    names = list(tiny_faces.attribute_names)
    clf.balanced_accuracy.fill_(1.0)  # every attribute judged: this test is the metrics' arithmetic
    x, y = tiny_faces.fixed_batch("test", 128)
    model = _Identity()
    perfect = attribute_metrics(clf, names, x, y, reconstructions=x, samples=x, model=model, directions={})
    assert perfect["frequency_gap"] == 0, "samples that are the real images have the real frequencies"
    assert all(a == 1 for a in perfect["reconstruction_agreement"].values()), "a perfect reconstruction agrees"
    gray = torch.full_like(x, 0.5)
    off = attribute_metrics(clf, names, x, y, reconstructions=gray, samples=gray, model=model, directions={})
    assert off["frequency_gap"] > 0 and min(off["reconstruction_agreement"].values()) < 1
    # An edit along a pixel-space direction that turns every face into one that has the attribute succeeds.
    k = names.index("Blond_Hair")
    has = y[:, k] > 0.5
    direction = x[has].mean(0).flatten() - x[~has].mean(0).flatten()
    edits = attribute_metrics(clf, names, x, y, x, x, model, {"Blond_Hair": 3 * direction})["edit"]["Blond_Hair"]
    assert edits["add"] > 0.5 and edits["remove"] > 0.5


def test_attribute_edits_callback_draws_every_epoch(compose_cfg, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nag.train import train
    from tests.helpers import TINY

    cfg = compose_cfg(
        [*TINY, "callbacks=with_edits", "callbacks.attribute_edits.attributes=[Smiling,Blond_Hair]", "test=false"]
    )
    train(cfg)
    (tb,) = (tmp_path / "tensorboard").iterdir()
    ea = EventAccumulator(str(tb), size_guidance={"images": 0})
    ea.Reload()
    grids = ea.Images("images/attribute_edits")
    side = 16 + 2
    assert len(grids) == cfg.trainer.max_epochs
    # 2 faces x 2 attributes rows, 5 steps, shown 4x (16-px faces)
    assert (grids[-1].height, grids[-1].width) == (4 * (4 * side + 2), 4 * (5 * side + 2))


def test_findings_quote_the_classifier_when_it_was_measured() -> None:
    from dataclasses import replace

    from nag.analysis.findings import assess
    from nag.analysis.measures import report_measures
    from tests.unit.test_findings import details

    d = details()
    d["matched0_attributes"] = {
        "accuracy_mean": 0.9,
        "frequency_gap": 0.1,
        "frequency": {
            "Sunglasses": {"label": 0.03, "real": 0.03, "samples": 0.0},
            "Smiling": {"label": 0.5, "real": 0.5, "samples": 0.6},
        },
        "reconstruction_kept": {"Sunglasses": 0.25, "Smiling": 0.75},
    }
    m = report_measures(d)
    first, _, third, *_ = assess(m)
    assert first.numbers["kept/Sunglasses"] == 0.25 and first.numbers["kept_common_mean"] == 0.75
    assert "kept/Smiling" not in first.numbers  # common: in the mean, not listed
    assert third.numbers["samples/Sunglasses"] == 0.0 and third.numbers["real/Sunglasses"] == 0.03
    assert third.numbers["frequency_gap"] == 0.1
    assert "Sunglasses 25%" in first.evidence and "Sunglasses 0.0% (real 3.0%)" in third.evidence
    first, _, third, *_ = assess(replace(m, classifier=None))
    quoted = [k for f in (first, third) for k in f.numbers if k.startswith(("kept", "samples/", "classifier", "freq"))]
    assert quoted == [] and "classifier" not in first.evidence + third.evidence, "without a classifier: nothing"

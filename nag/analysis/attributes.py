"""Attributes in latent space, and an attribute classifier as an independent judge of generated faces.

- **Directions** (:func:`nag.model.latent_edit.attribute_directions`, :func:`nag.training.figures.edit_grid`): for
  each attribute, mean(code | attribute) − mean(code | no attribute) over training codes; moving a code along it
  adds (or, backwards, removes) the attribute.
- **Classifier** (the *judge*): a small CNN trained once per dataset on the training split's real images and labels,
  cached next to the data caches (:func:`load_or_train_classifier`), with its balanced accuracy per attribute on
  the held-out test faces stored beside its weights. It measures how often generated faces show each attribute
  compared with real ones, whether reconstructions keep each attribute, and how often an edit along a direction
  flips the attribute (:func:`attribute_metrics`) — for the attributes it sees (balanced accuracy ≥
  :data:`JUDGED_AT`); the others are reported as *not judged*, never scored through a blind judge.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nag.data.datamodule import ImageDataModule
from nag.io.files import is_regular_file
from nag.io.output import atomic_file
from nag.model.inference import batched
from nag.runs.checkpoint_file import check_archive

log = logging.getLogger(__name__)


#: The held-out balanced accuracy at which the judge's verdict on an attribute counts (below: "not judged").
JUDGED_AT = 0.9
#: The judge's fewest optimizer steps, whatever the epochs: a split of a few hundred faces is not judged after a
#: handful of steps (400 read the colours of skin and hair from 256 16-px faces).
MIN_STEPS = 400
#: The test faces the judge is measured on (at most): a 2 % attribute still has ~100 of them, in ~250 MB at 64 px.
MAX_JUDGED_ON = 5000


class AttributeClassifier(nn.Module):
    """A small CNN: 3 × (conv 3×3 stride 2 → BN → ReLU), global average pooling, one logit per attribute; its
    held-out balanced accuracy per attribute travels with its weights (NaN until measured)."""

    def __init__(self, n_attributes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, n_attributes)
        # float64: a rate of whole counts that is exactly 0.9 reads 0.9 here, in metrics.json and in the tables
        self.register_buffer("balanced_accuracy", torch.full((n_attributes,), float("nan"), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, A) logits

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 512) -> Tensor:
        """0/1 predictions ``(N, A)`` for images ``(N, 3, H, W)`` in [0, 1]."""
        self.eval()
        return batched(lambda b: self(b) > 0, x, next(self.parameters()).device, batch)

    def judged(self) -> Tensor:
        """``(A,)`` bool: the attributes whose held-out balanced accuracy reaches :data:`JUDGED_AT`."""
        return self.balanced_accuracy.cpu().nan_to_num(0.0) >= JUDGED_AT


def balanced_accuracy(pred: Tensor, labels: Tensor) -> Tensor:
    """Per attribute, the mean of the true-positive and true-negative rates of 0/1 ``pred`` against ``labels``
    ``(N, A)``; NaN where the labels hold only one class (nothing to balance: not judged). By hand rather than
    scikit-learn's ``balanced_accuracy_score`` (as ``nag.analysis.rare`` uses for one probe at a time): that scores
    one column per call and gives a one-class column its recall, where an unjudgeable attribute must read NaN."""
    pred, labels = pred.bool(), labels.bool()
    pos, neg = labels.sum(0).double(), (~labels).sum(0).double()  # (A,)
    tpr = (pred & labels).sum(0) / pos.clamp_min(1)
    tnr = (~pred & ~labels).sum(0) / neg.clamp_min(1)
    return torch.where((pos > 0) & (neg > 0), (tpr + tnr) / 2, torch.full_like(tpr, float("nan")))


def _classifier_path(dm: ImageDataModule, cache_dir: Path, settings: dict[str, Any]) -> Path:
    """One classifier per training data (the train cache's directory names its settings) and training setup."""
    data_id = dm.split_cache("train").path.name
    key = hashlib.sha256(json.dumps({"data": data_id, **settings}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"classifier-{data_id}-{key}.pt"


def load_or_train_classifier(
    dm: ImageDataModule,
    cache_dir: str | Path,
    epochs: int = 12,
    n_train: int = 20_000,
    seed: int = 0,
    device: str = "cpu",
) -> AttributeClassifier:
    """The dataset's judge: read from the cache, or trained on the training split, measured on the test split
    (balanced accuracy per attribute) and cached (written atomically, read back with torch's safe loader).

    The loss weighs each attribute's positives by its negatives-to-positives ratio (a 5 % attribute would
    otherwise be learnt as "never"), with a one-cycle learning rate: on the 32-px synthetic faces every attribute
    then reaches the threshold (docs/results/moonshot.md)."""
    names = list(dm.attribute_names)
    if not names:
        raise ValueError("the dataset has no attributes to classify")
    settings = {"epochs": epochs, "n_train": n_train, "seed": seed, "names": names, "arch": "cnn3x32-balanced-400"}
    path = _classifier_path(dm, Path(cache_dir).expanduser(), settings)
    clf = AttributeClassifier(len(names))
    if is_regular_file(path):
        try:
            check_archive(path, "the cached classifier", path)  # bounded before torch reads it
            clf.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return clf.to(device).eval()
        except Exception as e:  # a damaged cache file is retrained, not trusted
            log.warning("attribute classifier %s is unreadable (%s); training it again", path, e)
    train = dm.dataset("train")
    n = min(n_train, len(train))
    x, y = dm.fixed_batch("train", n)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = clf.to(device).train()
    share = y.float().mean(0)  # (A,)
    pos_weight = ((1 - share) / share.clamp_min(1.0 / n)).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    batch = 128
    per_epoch = math.ceil(n / batch)
    epochs = max(epochs, math.ceil(MIN_STEPS / per_epoch))  # a small training split still gets its steps
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * per_epoch)
    log.info("training the attribute classifier on %d training images (%d epochs), once per dataset", n, epochs)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=g).split(batch):
            logits = clf(x[idx].to(device))
            loss = F.binary_cross_entropy_with_logits(logits, y[idx].to(device).float(), pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    x_test, y_test = dm.fixed_batch("test", min(len(dm.dataset("test")), MAX_JUDGED_ON))
    clf.balanced_accuracy.copy_(balanced_accuracy(clf.predict(x_test).cpu(), y_test))
    blind = [
        f"{a} {b:.2f}" for a, b, ok in zip(names, clf.balanced_accuracy.tolist(), clf.judged(), strict=True) if not ok
    ]
    if blind:
        log.warning(
            "the attribute judge cannot see (held-out balanced accuracy < %.2f): %s", JUDGED_AT, ", ".join(blind)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as f:
        torch.save(clf.state_dict(), f)
    return clf.eval()


def _freq(pred: Tensor) -> Tensor:
    return pred.float().mean(0)  # (A,)


def kept_fraction(p_real: Tensor, p_rec: Tensor) -> tuple[Tensor, Tensor]:
    """Per attribute: of the faces predicted to show it (``p_real``, (N, A)), the fraction whose reconstruction is
    too (``p_rec``), and how many faces show it (a fraction over no face is 0 here: check the count)."""
    has = p_real > 0.5
    return ((p_rec > 0.5) & has).float().sum(0) / has.float().sum(0).clamp_min(1), has.sum(0)


@torch.no_grad()
def attribute_metrics(
    clf: AttributeClassifier,
    names: Sequence[str],
    real: Tensor,
    labels: Tensor,
    reconstructions: Tensor,
    samples: Tensor,
    model: nn.Module,
    directions: dict[str, Tensor],
    n_edit: int = 200,
) -> dict[str, Any]:
    """What the classifier says about real, reconstructed, generated and edited faces.

    Args:
        clf: The dataset's classifier.
        names: Attribute names (the classifier's outputs).
        real: Real test images ``(N, 3, H, W)`` with ``labels (N, A)``.
        reconstructions: The model's reconstructions of ``real``.
        samples: Generated images.
        model: The model (for edits).
        directions: Attribute directions in its latent space.
        n_edit: Test faces edited per attribute.

    Returns:
        ``accuracy`` (held-out, per attribute and mean), ``balanced_accuracy`` (the judge's, per attribute) and
        ``not_judged`` (the attributes below :data:`JUDGED_AT`, left out of everything below), ``frequency`` (real
        labels, classifier on real, on samples) with ``frequency_gap`` (mean |samples − real| over the judged
        attributes), ``reconstruction_agreement``
        (fraction of faces whose reconstruction gets the same prediction), ``reconstruction_kept`` (of the faces
        that show an attribute, the fraction whose reconstruction still does), and ``edit`` (per attribute: the
        fraction of faces without it that get it at +1 × direction, with it that lose it at −1 ×, and the
        agreement of the other attributes).
    """
    p_real, p_rec, p_samp = clf.predict(real), clf.predict(reconstructions), clf.predict(samples)
    acc = (p_real == labels).float().mean(0)  # (A,)
    judged = clf.judged()  # (A,): verdicts only where the judge sees the attribute
    f_real, f_samp, f_label = _freq(p_real), _freq(p_samp), _freq(labels)
    agree = (p_real == p_rec).float().mean(0)
    kept, has = kept_fraction(p_real, p_rec)
    gaps = (f_samp - f_real).abs()[judged]
    out: dict[str, Any] = {
        "accuracy": {n: float(a) for n, a in zip(names, acc, strict=True)},
        "accuracy_mean": float(acc.mean()),
        "balanced_accuracy": {n: float(b) for n, b in zip(names, clf.balanced_accuracy, strict=True)},
        "judged_at": JUDGED_AT,
        "not_judged": [n for n, ok in zip(names, judged, strict=True) if not ok],
        "frequency": {
            n: {"label": float(fl), "real": float(fr), "samples": float(fs)}
            for n, fl, fr, fs, ok in zip(names, f_label, f_real, f_samp, judged, strict=True)
            if ok
        },
        "frequency_gap": float(gaps.mean()) if len(gaps) else float("nan"),
        "reconstruction_agreement": {n: float(a) for n, a, ok in zip(names, agree, judged, strict=True) if ok},
        "reconstruction_kept": {
            n: float(k) for n, k, h, ok in zip(names, kept, has, judged, strict=True) if h > 0 and ok
        },
        "edit": {},
    }
    dev = next(model.parameters()).device
    x = real[:n_edit]
    z = model.encode(x.to(dev))  # (F, d)
    base = clf.predict(model.decode(z).float().cpu())  # (F, A): the unedited reconstructions
    for name, d in directions.items():
        k = list(names).index(name)
        if not judged[k]:
            continue
        others = [j for j in range(len(names)) if j != k]
        result: dict[str, float] = {}
        for sign, key, want in ((1.0, "add", 1.0), (-1.0, "remove", 0.0)):
            faces = (base[:, k] != want).nonzero().flatten()
            if len(faces) == 0:
                continue
            edited = clf.predict(model.decode(z[faces] + sign * d.to(z)).float().cpu())  # (F', A)
            result[key] = float((edited[:, k] == want).float().mean())
            result[f"{key}_others_kept"] = float((edited[:, others] == base[faces][:, others]).float().mean())
        out["edit"][name] = result
    return out

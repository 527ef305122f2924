"""Attributes in latent space, and an attribute classifier as an independent judge of generated faces.

- **Directions** (:func:`nag.model.latent_edit.attribute_directions`, :func:`nag.training.figures.edit_grid`): for
  each attribute, mean(code | attribute) − mean(code | no attribute) over training codes; moving a code along it
  adds (or, backwards, removes) the attribute.
- **Classifier**: a small CNN trained once per dataset on the training split's real images and labels, cached
  next to the data caches (:func:`load_or_train_classifier`). It measures what the report only described: how
  often generated faces show each attribute compared with real ones, whether reconstructions keep each
  attribute, and how often an edit along a direction flips the attribute while the others stay
  (:func:`attribute_metrics`).
"""

from __future__ import annotations

import hashlib
import json
import logging
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


class AttributeClassifier(nn.Module):
    """A small CNN: 3 × (conv 3×3 stride 2 → BN → ReLU), global average pooling, one logit per attribute."""

    def __init__(self, n_attributes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, n_attributes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, A) logits

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 512) -> Tensor:
        """0/1 predictions ``(N, A)`` for images ``(N, 3, H, W)`` in [0, 1]."""
        self.eval()
        return batched(lambda b: self(b) > 0, x, next(self.parameters()).device, batch)


def _classifier_path(dm: ImageDataModule, cache_dir: Path, settings: dict[str, Any]) -> Path:
    """One classifier per training data (the train cache's directory names its settings) and training setup."""
    data_id = dm.split_cache("train").path.name
    key = hashlib.sha256(json.dumps({"data": data_id, **settings}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"classifier-{data_id}-{key}.pt"


def load_or_train_classifier(
    dm: ImageDataModule,
    cache_dir: str | Path,
    epochs: int = 3,
    n_train: int = 20_000,
    seed: int = 0,
    device: str = "cpu",
) -> AttributeClassifier:
    """The dataset's attribute classifier: read from the cache, or trained on the training split and cached
    (written atomically, read back with torch's safe loader)."""
    names = list(dm.attribute_names)
    if not names:
        raise ValueError("the dataset has no attributes to classify")
    settings = {"epochs": epochs, "n_train": n_train, "seed": seed, "names": names, "arch": "cnn3x32"}
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
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    log.info("training the attribute classifier on %d training images (%d epochs), once per dataset", n, epochs)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=g).split(128):
            loss = F.binary_cross_entropy_with_logits(clf(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
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
        ``accuracy`` (held-out, per attribute and mean), ``frequency`` (real labels, classifier on real, on
        samples) with ``frequency_gap`` (mean |samples − real| over attributes), ``reconstruction_agreement``
        (fraction of faces whose reconstruction gets the same prediction), ``reconstruction_kept`` (of the faces
        that show an attribute, the fraction whose reconstruction still does), and ``edit`` (per attribute: the
        fraction of faces without it that get it at +1 × direction, with it that lose it at −1 ×, and the
        agreement of the other attributes).
    """
    p_real, p_rec, p_samp = clf.predict(real), clf.predict(reconstructions), clf.predict(samples)
    acc = (p_real == labels).float().mean(0)  # (A,)
    f_real, f_samp, f_label = _freq(p_real), _freq(p_samp), _freq(labels)
    agree = (p_real == p_rec).float().mean(0)
    kept, has = kept_fraction(p_real, p_rec)
    out: dict[str, Any] = {
        "accuracy": {n: float(a) for n, a in zip(names, acc, strict=True)},
        "accuracy_mean": float(acc.mean()),
        "frequency": {
            n: {"label": float(fl), "real": float(fr), "samples": float(fs)}
            for n, fl, fr, fs in zip(names, f_label, f_real, f_samp, strict=True)
        },
        "frequency_gap": float((f_samp - f_real).abs().mean()),
        "reconstruction_agreement": {n: float(a) for n, a in zip(names, agree, strict=True)},
        "reconstruction_kept": {n: float(k) for n, k, h in zip(names, kept, has, strict=True) if h > 0},
        "edit": {},
    }
    dev = next(model.parameters()).device
    x = real[:n_edit]
    z = model.encode(x.to(dev))  # (F, d)
    base = clf.predict(model.decode(z).float().cpu())  # (F, A): the unedited reconstructions
    for name, d in directions.items():
        k = list(names).index(name)
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

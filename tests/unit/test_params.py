"""Parameters are declared once, in each component's constructor, and checked from that declaration: at
composition (torch-free, naming the config path) and at construction (naming the class)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import pytest
import torch
from annotated_types import Ge, Gt, Le, Len, Lt, MultipleOf

from nag.config import checks
from nag.config.errors import ConfigError
from nag.config.params import Excludes, Hint, Keys, NotBelow, OneOrLength
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


#: A plateau scheduler (one override: no spaces in it).
PLATEAU = "+model.scheduler={_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,_partial_:true}"


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
        (f"{PLATEAU} trainer.check_val_every_n_epoch=2", "needs trainer.check_val_every_n_epoch=1 (it is 2)"),
        (f"{PLATEAU} +trainer.limit_val_batches=0", "and trainer.limit_val_batches > 0 (it is 0)"),
    ],
)
def test_composition_names_the_config_path(override: str, message: str, compose_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(override.split()), TRAIN_ROOTS)
    assert message in str(err.value)


def test_a_valid_config_of_every_preset_passes(compose_cfg) -> None:
    for overrides in (
        [],
        PLATEAU.split(),  # validation every epoch (the default): the plateau has its metric
        ["+trainer.limit_val_batches=0"],  # without a plateau scheduler no validation is fine
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


# --- the checking vocabulary itself, by known answers (each line a rule a mutant of nag.config.checks breaks) ---


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (True, bool, None),
        (1, bool, "must be true or false"),
        (3, int, None),
        (True, int, "must be an integer"),
        (3.0, int, "must be an integer"),
        (3, float, None),
        (2.5, float, None),
        (False, float, "must be a number"),
        ("x", float, "must be a number"),
        ("a", str, None),
        (1, str, "must be a string"),
        ("b", Literal["a", "b"], None),
        ("c", Literal["a", "b"], "must be one of 'a', 'b'"),
        (True, Literal[1, 2], "must be one of 1, 2"),
        ("auto", Union[bool, Literal["auto"]], None),  # noqa: UP007
        (False, Union[bool, Literal["auto"]], None),  # noqa: UP007
        ("x", Union[bool, Literal["auto"]], "must be true, false or auto"),  # noqa: UP007
        ([1.0, 2], Union[float, Sequence[float]], None),  # noqa: UP007
        (["a"], Union[float, Sequence[float]], "must be a number or a list of numbers"),  # noqa: UP007
        ("1", Union[float, Sequence[float]], "must be a number or a list of numbers"),  # noqa: UP007
        ((1, 2), list[int], None),
        ([1, 2.5], list[int], "must be a list"),
        ("ab", list[str], "must be a list"),
        ([], list, None),
        ([1, "a"], tuple, None),
        (None, Optional[int], None),  # noqa: UP045
        (None, int | None, None),
        (None, int, "must be set (it is null)"),
        (None, Annotated[int, Ge(1)] | None, None),
        (5, Optional[int], None),  # noqa: UP045
        ("x", Optional[int], "must be an integer"),  # noqa: UP045
        ({"a": 1}, Mapping, None),  # not described by the vocabulary: not checked here
        ("x", int | Mapping, None),
    ],
)
def test_a_values_type_is_judged_against_its_annotation(value, annotation, expected):
    assert checks._type_problem(value, annotation) == expected


@pytest.mark.parametrize(
    ("value", "meta", "expected"),
    [
        (1.0, [Gt(0)], None),
        (0.0, [Gt(0)], "must be > 0"),
        (0, [Ge(0)], None),
        (-0.5, [Ge(0)], "must be >= 0"),
        (0.99, [Lt(1)], None),
        (1, [Lt(1)], "must be < 1"),
        (10_000_000, [Le(10_000_000)], None),
        (10_000_001, [Le(10_000_000)], "must be <= 10,000,000"),
        (2.5, [Le(2.5)], None),
        (2.75, [Le(2.5)], "must be <= 2.5"),
        (12, [MultipleOf(4)], None),
        (10, [MultipleOf(4)], "must be a multiple of 4"),
        (10.0, [MultipleOf(4)], None),  # a float is not an integer count: the rule is for ints
        (float("inf"), [], "must be finite"),
        (float("nan"), [Ge(0)], "must be finite"),
        (-1, [Ge(0), Gt(5)], "must be >= 0"),  # the first broken bound is named
        (3, [Ge(0), Gt(5)], "must be > 5"),
        (1e-3, [Gt(1e-4)], None),
        (1e-5, [Gt(1e-4)], "must be > 0.0001"),
    ],
)
def test_a_numbers_bounds_are_named_exactly(value, meta, expected):
    assert checks._bound_problem(value, meta) == expected


def test_problem_reads_lengths_siblings_exclusions_keys_and_hints():
    size = Annotated[int, Ge(2), Hint("batch norm needs two images")]
    assert checks.problem(1, size) == "must be >= 2 (batch norm needs two images)"
    assert checks.problem(2, size) is None
    pair = Annotated[list[float], Len(2, 2)]
    assert checks.problem([1.0], pair) == "must have 2 values"
    assert checks.problem([1.0, 2.0], pair) is None
    some = Annotated[list[float], Len(1, 3)]
    assert checks.problem([1.0] * 4, some) == "must have 1 to 3 values"
    assert checks.problem([], some) == "must have 1 to 3 values"
    assert checks.problem([1.0] * 3, some) is None
    many = Annotated[list[float], Len(2)]
    assert checks.problem([1.0], many) == "must have 2 to inf values"
    assert checks.problem([1.0] * 50, many) is None
    per_dim = Annotated[list[float], OneOrLength("dim")]
    siblings = {"dim": 3, "crop": 64}.get
    assert checks.problem([1.0, 2.0], per_dim, siblings) == "has 2 values but dim=3: give one value or 3"
    named = checks.problem([1.0, 2.0], per_dim, siblings, lambda n: f"prior.{n}")
    assert named == "has 2 values but prior.dim=3: give one value or 3"
    assert checks.problem([1.0], per_dim, siblings) is None
    assert checks.problem([1.0, 2.0, 3.0], per_dim, siblings) is None
    assert checks.problem([1.0, 2.0], per_dim, {"dim": "3"}.get) is None  # a sibling that is not a count: no rule
    not_below = Annotated[int, NotBelow("crop", "the crop is cut first")]
    assert checks.problem(32, not_below, siblings) == "is smaller than crop=64: the crop is cut first"
    assert checks.problem(64, not_below, siblings) is None
    assert checks.problem(32, Annotated[int, NotBelow("crop")], siblings) == "is smaller than crop=64"
    assert checks.problem(32, not_below, {}.get) is None
    no_zero = Annotated[int, Ge(0), Excludes((0,), "0 epochs trains nothing")]
    assert checks.problem(0, no_zero) == "0 epochs trains nothing"
    assert checks.problem(-1, no_zero) == "must be >= 0"
    assert checks.problem(1, no_zero) is None
    optimizer = Annotated[Mapping, Keys(lr=Annotated[float, Gt(0)])]
    assert checks.problem({"lr": -1.0}, optimizer) == "has lr=-1.0: it must be > 0"
    assert checks.problem({"lr": 1e-3, "other": -1}, optimizer) is None
    assert checks.problem({}, optimizer) is None
    every = Annotated[Union[float, Sequence[float]], Gt(0)]  # noqa: UP007
    assert checks.problem([1.0, -2.0], every) == "must be > 0"
    assert checks.problem([1.0, 2.0], every) is None
    assert checks.problem(None, Annotated[int, Ge(1)]) == "must be set (it is null)"


def test_a_union_at_the_top_checks_the_member_the_value_is():
    count_or_auto = Union[Annotated[int, Ge(1)], Literal["auto"], None]  # noqa: UP007
    assert checks.problem("auto", count_or_auto) is None
    assert checks.problem(None, count_or_auto) is None
    assert checks.problem(0, count_or_auto) == "must be >= 1"
    assert checks.problem(4, count_or_auto) is None
    assert checks.problem("x", count_or_auto) == "must be one of 'auto'"
    required = Union[Annotated[int, Ge(1)], Literal["auto"]]  # noqa: UP007
    assert checks.problem(None, required) == "must be set (it is null)"
    hinted = Annotated[int, Ge(1), Hint("one image at least")] | None
    assert checks.problem(0, hinted) == "must be >= 1 (one image at least)"


class _Base:
    def __init__(self, dim: Annotated[int, Ge(1)] = 2, scale: float = 1.0) -> None:
        self.dim, self.scale = dim, scale


class _Child(_Base):
    @checks.checked
    def __init__(self, mean: Annotated[float, Gt(-10)] = 0.0, dim: int = 8, **kwargs) -> None:
        super().__init__(dim=dim, **kwargs)
        self.mean = mean


class _Closed(_Base):
    def __init__(self, width: Annotated[int, Ge(1)] = 4) -> None:
        super().__init__()


def test_declarations_are_read_through_forwarded_kwargs_and_stop_at_a_closed_signature():
    assert checks._defaults(_Child) == {"mean": 0.0, "dim": 8, "scale": 1.0}
    names = [name for name, _ in checks._annotations(_Child)]
    assert names == ["mean", "dim", "scale"]  # the child's own first, a name declared twice read once
    assert dict(checks._annotations(_Child))["dim"] is int
    assert checks._defaults(_Closed) == {"width": 4}
    assert [name for name, _ in checks._annotations(_Closed)] == ["width"]
    with pytest.raises(ConfigError, match=r"^_Child: mean=-11\.0 must be > -10; scale='x' must be a number\.$"):
        _Child(mean=-11.0, scale="x")
    child = _Child(mean=1.0, scale=torch.tensor(2.0))
    assert (child.mean, child.dim, child.scale.item()) == (1.0, 8, 2.0)


def test_plain_values_are_lists_and_numbers():
    assert checks._plain((1, (2, 3))) == [1, [2, 3]]
    assert checks._plain(torch.tensor(2.5)) == 2.5
    assert checks._plain(torch.tensor([1, 2])) == [1, 2]
    assert checks._plain("ab") == "ab"
    from omegaconf import OmegaConf

    assert checks._plain(OmegaConf.create([1, [2]])) == [1, [2]]
    assert checks._shown(torch.tensor([1.5])) == "[1.5]"
    assert checks._split(Annotated[Annotated[int, Ge(1)], Le(3)]) == (int, [Ge(1), Le(3)])
    assert checks._members(int | None) == [int, type(None)]
    assert checks._members(Optional[int]) == [int, type(None)]  # noqa: UP045
    assert checks._members(int) == [int]
    assert (checks._is_int(True), checks._is_int(2), checks._is_int(2.0)) == (False, True, False)
    assert (checks._is_number(True), checks._is_number(2), checks._is_number(2.0), checks._is_number("2")) == (
        False,
        True,
        True,
        False,
    )


def test_a_mandatory_value_left_as_question_marks_is_named_even_where_null_is_allowed() -> None:
    """``???`` is not "absent" (a default would hide it) nor null (an optional key would take it): it is named."""
    import dataclasses

    from omegaconf import OmegaConf

    @dataclasses.dataclass
    class Keys:
        seed: int | None = None
        steps: Annotated[int, Ge(1)] = 1

    cfg = OmegaConf.create({"seed": "???", "steps": 3})
    with pytest.raises(ConfigError, match=r"seed: Missing mandatory value: seed"):
        validate(cfg, {"": Keys}, components=False)
    validate(OmegaConf.create({"seed": None, "steps": 3}), {"": Keys}, components=False)
    validate(OmegaConf.create({"steps": 3}), {"": Keys}, components=False)  # absent: the default holds
    with pytest.raises(ConfigError, match=r"steps=0 must be >= 1"):
        validate(OmegaConf.create({"steps": 0}), {"": Keys}, components=False)


def test_a_union_member_reads_its_siblings_and_components_can_be_left_unchecked() -> None:
    import dataclasses

    from omegaconf import OmegaConf

    size = Annotated[int, NotBelow("crop")] | None
    assert checks.problem(32, size, {"crop": 64}.get) == "is smaller than crop=64"
    assert checks.problem(None, size, {"crop": 64}.get) is None

    @dataclasses.dataclass
    class Keys:
        seed: int = 0

    cfg = OmegaConf.create({"seed": 1, "prior": {"_target_": "nag.model.priors.NormalPrior", "variance": -1.0}})
    validate(cfg, {"": Keys}, components=False)  # the entry point's own keys only
    with pytest.raises(ConfigError, match=r"prior.variance=-1.0 must be > 0"):
        validate(cfg, {"": Keys})


def test_a_root_keys_problem_is_named_without_a_leading_dot_under_the_headline(compose_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(["seed=abc"]), TRAIN_ROOTS)
    assert str(err.value).startswith("invalid config:\n  seed='abc' ")


def test_a_list_value_is_checked_with_its_interpolations_resolved(compose_cfg) -> None:
    cfg = compose_cfg(["model.latent_dim=32", "model.encoder.channels=[${model.latent_dim},64,128]"])
    validate(cfg, TRAIN_ROOTS)  # [32, 64, 128] once resolved: whole numbers, as declared
    with pytest.raises(ConfigError, match=r"model.encoder.channels=\[64, 'x', 128\] must be a list"):
        validate(compose_cfg(["model.encoder.channels=[${model.latent_dim},x,128]"]), TRAIN_ROOTS)


def test_an_undeclared_parameter_does_not_stop_the_check_of_the_next() -> None:
    from omegaconf import OmegaConf

    from nag.config.schema import _check

    problems: list[str] = []
    _check(OmegaConf.create({"a": 1, "b": "x"}), "", [("a", None), ("b", int)], problems)
    assert len(problems) == 1 and problems[0].startswith("b='x' ")


def test_defaults_are_collected_through_a_class_without_its_own_init() -> None:
    class Base:
        def __init__(self, a: int = 1, b: int = 2) -> None: ...

    class Middle(Base):  # no __init__ of its own
        pass

    class Leaf(Middle):
        def __init__(self, c: int = 3, a: int = 9, **kwargs: int) -> None: ...

    assert checks._defaults(Leaf) == {"c": 3, "a": 9, "b": 2}
    assert checks._defaults(Middle) == {"a": 1, "b": 2}


def test_a_mapping_value_with_markers_other_than_keys_is_checked_by_its_type_alone() -> None:
    assert checks.problem({"a": 1}, Annotated[dict, Hint("a mapping")]) is None
    assert checks.problem({"a": 1}, Annotated[dict, Len(1, 2)]) is None


def test_an_annotation_of_no_checked_kind_reports_no_type_problem() -> None:
    assert checks._type_problem(5, dict) is None and checks.problem(5, dict) is None

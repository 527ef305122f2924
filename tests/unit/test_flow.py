"""The ex-post normalising flow (``sampler=flow``, ``nag.samplers.flow``): it learns a density a Gaussian cannot,
stops early on held-out codes, and is stored beside the run, reused, and refitted when the stored file is wrong."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from nag.config.errors import ConfigError
from nag.samplers.core import GaussianMixtureSampler
from nag.samplers.flow import FlowSampler
from tests.helpers import PicklePayload


def banana(n: int, seed: int) -> torch.Tensor:
    """A curved 2-D cloud (x2 = x1² + noise) away from the origin: no Gaussian fits it."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, generator=g)
    x2 = x1**2 + 0.5 * torch.randn(n, generator=g)
    return torch.stack([x1, x2 - 3], 1) * 2


def small(**kw) -> FlowSampler:
    return FlowSampler(**{"transforms": 3, "hidden": 32, **kw})


def test_the_flow_learns_a_density_no_gaussian_fits() -> None:
    train, test = banana(2000, 0), banana(2000, 1)
    flow = small().fit(train, prior=None)
    gauss = GaussianMixtureSampler(1).fit(train, prior=None)
    flow_nll = -float(flow.log_prob(test).mean())
    gauss_nll = -float(gauss.gmm.score(test.double().numpy()))
    assert flow_nll < gauss_nll - 0.7, (flow_nll, gauss_nll)  # measured 3.6 vs 4.7 nats
    # Its samples have the cloud's curvature: x2 follows x1² (a Gaussian's samples have no such relation).
    z = flow.sample(4000, seed=0) / 2
    curvature = torch.corrcoef(torch.stack([z[:, 0] ** 2, z[:, 1]]))[0, 1]
    assert curvature > 0.7, curvature
    assert z.shape == (4000, 2) and torch.isfinite(z).all()


def test_early_stopping_on_held_out_codes_keeps_the_best_epoch() -> None:
    flow = small(patience=5, max_epochs=400).fit(banana(1000, 0), prior=None)
    h = flow.history
    assert h["epochs"] < 400, "stopped early"
    assert h["epochs"] - h["best_epoch"] == 5, "stopped after `patience` epochs without a better held-out NLL"
    capped = small(max_epochs=3).fit(banana(1000, 0), prior=None)
    assert capped.history["epochs"] == 3


def test_sampling_is_seeded_and_does_not_touch_the_global_rng() -> None:
    flow = small(max_epochs=5).fit(banana(500, 0), prior=None)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = flow.sample(50, seed=1), flow.sample(50, seed=1), flow.sample(50, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.rand(1), before), "the caller's random stream is untouched"


def test_a_fitted_flow_is_stored_reused_and_refitted_when_it_does_not_match(tmp_path: Path, caplog) -> None:
    codes = banana(600, 0)
    first = small(max_epochs=10, store=str(tmp_path)).fit(codes, prior=None)
    (stored,) = tmp_path.glob("flow-*.pt")
    assert first.history["stored"] is False
    again = small(max_epochs=10, store=str(tmp_path)).fit(codes, prior=None)
    assert again.history["stored"] is True and again.history["val_nll"] == pytest.approx(first.history["val_nll"])
    assert torch.equal(again.sample(20, seed=3), first.sample(20, seed=3)), "the same flow"
    # Other codes or other settings: another file, fitted anew.
    small(max_epochs=10, store=str(tmp_path)).fit(banana(600, 5), prior=None)
    small(max_epochs=11, store=str(tmp_path)).fit(codes, prior=None)
    assert len(list(tmp_path.glob("flow-*.pt"))) == 3
    # A damaged or planted file under the right name: named in a warning, refitted, replaced.
    for bad in (b"not a zip", None):
        if bad is None:  # a real torch file with a NaN weight
            data = torch.load(stored, weights_only=True)
            name = next(k for k, v in data["state_dict"].items() if v.is_floating_point())
            data["state_dict"][name] = torch.full_like(data["state_dict"][name], float("nan"))
            torch.save(data, stored)
        else:
            stored.write_bytes(bad)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nag.samplers.flow"):
            refit = small(max_epochs=10, store=str(tmp_path)).fit(codes, prior=None)
        assert f"ignored {stored}" in caplog.text and "fitting the flow again" in caplog.text
        assert refit.history["stored"] is False
        assert small(max_epochs=10, store=str(tmp_path)).fit(codes, prior=None).history["stored"] is True


def test_a_store_that_cannot_be_written_loses_nothing_but_the_cache(tmp_path: Path, caplog) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "samplers").symlink_to(tmp_path / "elsewhere")
    with caplog.at_level(logging.WARNING, logger="nag.samplers.flow"):
        flow = small(max_epochs=3, store=str(tmp_path / "samplers")).fit(banana(200, 0), prior=None)
    assert flow.sample(4).shape == (4, 2)
    assert "could not be stored" in caplog.text and not any((tmp_path / "elsewhere").iterdir())


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "realnvp"}, "kind"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"transforms": 0}, "transforms"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_settings_are_refused_by_name(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FlowSampler(**kw)


def test_the_kind_chooses_zukos_flow_and_the_settings_a_stored_flow_must_match_are_named() -> None:
    import zuko

    assert type(FlowSampler(kind="maf")._build(2)) is zuko.flows.MAF  # (zuko's NSF is a subclass of MAF)
    assert type(FlowSampler(kind="nsf")._build(2)) is zuko.flows.NSF
    assert FlowSampler(hidden=7, lr=0.5).settings() == {
        "kind": "maf",
        "transforms": 4,
        "hidden": 7,
        "max_epochs": 500,
        "patience": 20,
        "lr": 0.5,
        "batch_size": 256,
        "val_fraction": 0.2,
        "seed": 0,
    }


def test_a_stored_fit_holding_a_pickle_is_refitted_without_running_it(tmp_path: Path) -> None:
    codes = banana(300, 0)
    small(max_epochs=2, store=str(tmp_path)).fit(codes, prior=None)
    (stored,) = tmp_path.glob("flow-*.pt")
    data = torch.load(stored, weights_only=True)
    marker = tmp_path / "ran"
    torch.save({**data, "payload": PicklePayload(marker)}, stored)
    refit = small(max_epochs=2, store=str(tmp_path)).fit(codes, prior=None)
    assert refit.history["stored"] is False and not marker.exists()


@pytest.mark.parametrize("kind", ["maf", "nsf"])
def test_the_flow_is_built_with_its_configured_size(kind: str) -> None:
    net = FlowSampler(kind, transforms=2, hidden=16)._build(3)
    assert len(net.transform.transforms) == 2, "sampler.transforms"
    for t in net.transform.transforms:
        widths = [m.out_features for m in t.modules() if isinstance(m, torch.nn.Linear)]
        assert widths[:-1] == [16, 16], "two hidden layers of sampler.hidden units"


def test_the_held_out_split_and_the_standardisation_are_the_training_parts(tmp_path: Path) -> None:
    """Ten codes at val_fraction 0.05 keep one held out (never none); the mean and std are the other nine's, a std
    below 1 kept as it is."""
    from nag.model.priors import NormalPrior

    codes = torch.linspace(0, 0.9, 10).view(10, 1) * torch.tensor([[1.0, 0.1]])
    sampler = FlowSampler(transforms=1, hidden=4, max_epochs=2, val_fraction=0.05, seed=3).fit(codes, NormalPrior(2))
    torch.manual_seed(3)
    held_out = int(torch.randperm(10)[0])
    train = torch.cat([codes[:held_out], codes[held_out + 1 :]])
    assert torch.allclose(sampler.mean, train.mean(0)) and torch.allclose(sampler.std, train.std(0))
    assert float(sampler.std[1]) < 0.05


def test_a_stored_fits_key_sees_the_codes_shape_and_is_24_characters() -> None:
    codes = torch.arange(24, dtype=torch.float32)
    flow = FlowSampler()
    a, b = flow.key(codes.view(12, 2)), flow.key(codes.view(6, 4))
    assert a != b, "the same bytes in another shape are other codes"
    assert len(a) == 24 and all(c in "0123456789abcdef" for c in a)


@pytest.mark.parametrize(
    ("curve", "epochs", "best_epoch"),
    [
        ([1.0, 1.0 - 1e-4, 1.0, 1.0], 3, 1),  # exactly 1e-4 better is not better: stop after 2 epochs without
        ([1.0, 0.99995, 0.9, 0.90005, 0.90005], 5, 3),  # worse by less than 1e-4 is still not better
        ([2.0, 1.0, 0.5, 0.4, 0.3], 5, 5),
    ],
)
def test_early_stopping_counts_improvements_of_more_than_its_margin(
    curve: list[float], epochs: int, best_epoch: int
) -> None:
    from nag.model.priors import NormalPrior

    sampler = FlowSampler(transforms=1, hidden=4, max_epochs=len(curve), patience=2)
    scripted = iter(curve)
    sampler._held_out = lambda val: next(scripted)  # the held-out criterion, as a known sequence
    sampler.fit(torch.randn(40, 2, generator=torch.Generator().manual_seed(0)), NormalPrior(2))
    assert (sampler.history["epochs"], sampler.history["best_epoch"]) == (epochs, best_epoch)


def test_ten_codes_are_enough_to_fit_and_nine_are_not() -> None:
    from nag.model.priors import NormalPrior

    codes = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    FlowSampler(transforms=1, hidden=4, max_epochs=1).fit(codes, NormalPrior(2))
    with pytest.raises(ValueError, match=r"needs at least 10 training codes to fit and hold out, got 9"):
        FlowSampler(transforms=1, hidden=4, max_epochs=1).fit(codes[:9], NormalPrior(2))

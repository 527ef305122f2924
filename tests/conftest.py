"""Shared fixtures: isolated dataset caches and Hydra composition of the real config tree."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from nag.config.compose import compose_run
from nag.config.console import THIRD_PARTY_DEPRECATING_MODULES, THIRD_PARTY_WARNINGS
from tests.helpers import TINY, run_module


def pytest_configure(config: pytest.Config) -> None:
    """The entry points' filters of third-party deprecation noise (nag.config.console, the one list of them), as
    pytest filters: pytest's own per-test filters would override filters installed at import."""
    for pattern in THIRD_PARTY_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{pattern}")
    for module in THIRD_PARTY_DEPRECATING_MODULES:
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{module}")
    # FID off outside the FID tests (metrics.fid.enabled reads NAG_FID; they turn it on): its Inception network
    # costs ~0.1 s per image on 2 cores.
    os.environ["NAG_FID"] = "false"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One thread per pytest-xdist worker (and per entry point it starts): two workers on two cores, each with
        # torch's default of a thread per core, would oversubscribe them.
        import torch

        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset cache for the whole session (never the user's ~/.cache/nag)."""
    return tmp_path_factory.mktemp("cache")


ComposeFn = Callable[..., DictConfig]


@pytest.fixture
def compose_cfg(tmp_path: Path, cache_dir: Path) -> ComposeFn:
    """Compose ``conf/<config>.yaml`` (default train) with overrides as ``python -m nag.<config>`` would, outputs
    under tmp_path."""

    def _compose(
        overrides: list[str] | None = None, output_dir: Path | None = None, config: str = "train"
    ) -> DictConfig:
        return compose_run([f"paths.cache_dir={cache_dir}", *(overrides or [])], output_dir or tmp_path, config)

    return _compose


@pytest.fixture(scope="session")
def report_sweep(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The report's three runs, tiny, trained once per session through the real multirun entry point."""
    cwd = tmp_path_factory.mktemp("sweep")
    r = run_module(
        "nag.train",
        [
            "-m",
            "experiment=report_plain,report_mean0,report_mean-3",
            *TINY,
            "data.n_train=128",
            "trainer.max_epochs=1",
            "test=false",
        ],
        cwd,
        cache_dir,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (cwd / "multirun").glob("*/*")
    return sweep


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """One finished tiny run (prior N(0, 2), latent 8, hidden 32) through the real entry point, for the tests that
    read, resume or craft checkpoints from it (they must not change its files)."""
    cwd = tmp_path_factory.mktemp("tiny_run")
    r = run_module(
        "nag.train", [*TINY, "trainer.max_epochs=1", "test=false", f"hydra.run.dir={cwd}/run"], cwd, cache_dir
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return cwd / "run"

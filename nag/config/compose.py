"""Composing the project's config tree outside ``@hydra.main``: what ``resume=`` checks a run's stored overrides
with (:func:`compose`), and the configs the benchmark, the tests and notebooks run (:func:`compose_run`).
Imports only Hydra and OmegaConf."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from nag import CONF_DIR


def compose(config: str, overrides: Sequence[str], return_hydra_config: bool = False) -> DictConfig:
    """``conf/<config>.yaml`` with ``overrides``, as ``python -m nag.<config>`` composes it (unresolved).

    Hydra's global state is restored afterwards, so this may run before ``@hydra.main``."""
    was_initialized = GlobalHydra.instance().is_initialized()
    if was_initialized:
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config, overrides=list(overrides), return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


def compose_run(overrides: Sequence[str], output_dir: Path, config: str = "train") -> DictConfig:
    """``conf/<config>.yaml`` composed as ``python -m nag.<config> <overrides>`` would, writing into
    ``output_dir`` (what the benchmark and the tests run)."""
    cfg = compose(config, overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations (the HParams callback's overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def plain(cfg: Any) -> Any:
    """A composed (trusted) config section as plain data, resolved; plain data as it is."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg

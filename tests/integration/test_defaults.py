"""One home for defaults (docs/development.md, "Defaults"): a yaml under a nag ``_target_`` shows every setting a
user may override (Hydra needs the key to exist for ``group.key=value``), and each literal value there either
restates the constructor's default exactly or is a deliberate setting listed here with its reason. A default
changed in Python but not in yaml, or the other way round, fails this test instead of differing silently."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nag import CONF_DIR

#: (file, key) -> value: the settings that differ from the constructor's default on purpose.
DELIBERATE = {
    ("callbacks/progress_bar.yaml", "progress_bar.refresh_rate"): 20,  # a log line every 20 steps, not every step
    ("matching/mmd_rbf.yaml", "kernel"): "rbf",  # the option's point: the Gaussian kernel instead of the IMQ
    ("matching/moments.yaml", "weight"): 0.01,  # each distance at its benchmark λ (docs/results/benchmark.md)
    ("matching/pointwise.yaml", "weight"): 0.01,
    ("matching/sinkhorn.yaml", "weight"): 0.01,
    ("matching/swd.yaml", "weight"): 0.01,
    ("prior/laplace.yaml", "variance"): 2.0,  # the report's variance 2 for every prior
    ("prior/normal_mean-3.yaml", "mean"): -3.0,  # the option's point: its mean
    ("prior/normal_mean-3.yaml", "variance"): 2.0,
    ("prior/normal_mean0.yaml", "variance"): 2.0,
    ("prior/normal_mean3.yaml", "mean"): 3.0,
    ("prior/normal_mean3.yaml", "variance"): 2.0,
    ("sampler/gaussian.yaml", "n_components"): 1,  # the option's point: one full Gaussian
}


def _defaults(target: str) -> dict[str, Any]:
    """The constructor defaults of ``target``, its bases' included (the ones it forwards ``**kwargs`` to)."""
    module, _, name = target.rpartition(".")
    out: dict[str, Any] = {}
    for klass in getattr(importlib.import_module(module), name).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(inspect.unwrap(init)).parameters.values():
            if p.name not in out and p.default is not p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                out[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def _literals() -> list[tuple[str, str, Any, Any]]:
    """``(file, key, yaml value, default)`` of every literal yaml value under a nag ``_target_`` with a default."""
    rows = []

    def visit(node: DictConfig, file: str, at: str) -> None:
        target = node.get("_target_") if "_target_" in node else None
        defaults = _defaults(target) if isinstance(target, str) and target.startswith("nag.") else {}
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                visit(child, file, f"{at}{key}.")
            elif key in defaults and not child._is_interpolation():
                value = OmegaConf.to_container(node[key]) if isinstance(child, ListConfig) else node[key]
                rows.append((file, f"{at}{key}", value, defaults[key]))

    for path in sorted(CONF_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONF_DIR)
        if rel.parts[0] != "hydra":
            visit(OmegaConf.load(path), str(rel), "")
    return rows


def test_every_yaml_value_restates_its_default_or_is_a_listed_deliberate_setting() -> None:
    rows = _literals()
    assert len(rows) > 80, "the scan sees the config tree"
    differ = {(file, key): value for file, key, value, default in rows if value != default}
    assert differ == DELIBERATE, (
        f"not listed: {sorted(set(differ.items()) - set(DELIBERATE.items()))}; "
        f"listed but no longer deliberate: {sorted(set(DELIBERATE.items()) - set(differ.items()))}"
    )


def test_the_hyper_parameter_names_have_one_home_the_constructor(compose_cfg) -> None:
    """NAGModule's signature names the hyper-parameters; what a checkpoint stores, what loading accepts, which may be
    missing from older checkpoints (with the defaults they then had) and the allow-list's roles follow from it."""
    from nag.runs.trusted import CHECKPOINT_ROLES, OPTIONAL_DEFAULTS
    from nag.training.build import build_model
    from nag.training.module import HPARAM_KEYS, NAGModule

    signature = inspect.signature(NAGModule.__init__).parameters
    assert set(build_model(compose_cfg(["debug=tiny"])).hparams) == set(HPARAM_KEYS)
    assert all(signature[k].default == v for k, v in OPTIONAL_DEFAULTS.items()), "an older checkpoint's defaults"
    assert set(OPTIONAL_DEFAULTS) <= set(HPARAM_KEYS) and set(CHECKPOINT_ROLES) <= set(HPARAM_KEYS)


def test_this_machines_keys_are_one_declared_set() -> None:
    """Hydra's run names leave out exactly the keys nag.config.keys declares this machine's."""
    from nag.config.keys import MACHINE_KEYS, is_machine_key

    hydra = OmegaConf.load(CONF_DIR / "hydra" / "default.yaml")
    assert list(hydra.job.config.override_dirname.exclude_keys) == list(MACHINE_KEYS)
    assert all(is_machine_key(k) for k in MACHINE_KEYS)
    assert not any(is_machine_key(k) for k in ("prior.mean", "data.batch_size", "matching.weight", "model.latent_dim"))

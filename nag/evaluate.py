"""``python -m nag.evaluate ckpt_path=<ckpt> [prior=...] [sampler=prior|gmm|gaussian|flow]``: evaluate one checkpoint.

Samples any checkpoint from any prior (``prior=normal_mean-3``, ``prior=normal_mean0 prior.mean=100``) or from
an ex-post density fitted to its training codes (``sampler=gmm``), and writes ``metrics.json``, PNG figures and
TensorBoard entries into its own run dir. What is measured is :mod:`nag.analysis.evaluation`'s; reading the
checkpoint's run and writing the results is done here.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import hydra
from annotated_types import Ge
from omegaconf import DictConfig

import nag  # noqa: F401  (registers the nag.* OmegaConf resolvers)
from nag.config.console import print_help_and_exit, quiet_third_party
from nag.config.errors import reported_as_exit

log = logging.getLogger(__name__)


@dataclass
class EvaluateKeys:
    """The keys of ``conf/evaluate.yaml``'s root, declared (checked at composition by :mod:`nag.config.schema`)."""

    ckpt_path: str | None
    device: str
    seed: int
    n_eval: Annotated[int, Ge(2)]
    n_samples: Annotated[int, Ge(2)]
    n_fit: Annotated[int, Ge(2)]


@dataclass
class FidKeys:
    """``metrics.fid``'s keys (:mod:`nag.metrics.fidelity`)."""

    enabled: bool
    weights_path: str | None
    download: bool
    n_samples: Annotated[int, Ge(8)] | Literal["auto"]
    cache_dir: str
    infinity_points: Literal[0] | Annotated[int, Ge(2)] = 0  # FID∞ fits a line: 0 (off) or at least 2 points


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"a": {"b": 1}} -> {"a/b": 1.0}`` for the numeric leaves (TensorBoard scalars)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        elif isinstance(v, int | float):
            out[f"{prefix}{k}"] = float(v)
    return out


def write_outputs(ev: Any, out_dir: Path) -> None:
    """An evaluation's metrics.json, one PNG per figure, and the same into TensorBoard under
    ``out_dir/tensorboard`` (every file through :class:`~nag.io.output.OutputDir`'s atomic writer; a link there
    is never followed)."""
    from torch.utils.tensorboard import SummaryWriter

    from nag.io.output import OutputDir
    from nag.training.figures import png_bytes

    out = OutputDir(out_dir, "the evaluation's output dir")
    out.write_json("metrics.json", ev.metrics)
    with SummaryWriter(str(out.folder("tensorboard"))) as writer:
        for name, grid in ev.figures.items():
            out.write_bytes(f"{name}.png", png_bytes(grid))
            writer.add_image(f"images/{name}", grid)
        for key, value in flatten(ev.metrics).items():
            writer.add_scalar(key, value)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.ckpt_path``, evaluate it and write everything to ``cfg.paths.output_dir``."""
    from nag.analysis.evaluation import RealImages, evaluate_attributes, evaluate_model
    from nag.analysis.runs import open_for_command
    from nag.config.compose import plain
    from nag.config.errors import instantiate
    from nag.config.schema import validate
    from nag.metrics.fidelity import FidSetup, with_n
    from nag.runs.trusted import build_stored
    from nag.samplers.flow import store_beside

    validate(cfg, {"": EvaluateKeys, "metrics.fid": FidKeys}, components=False)  # before any file is read
    model, where = open_for_command(cfg, "evaluate")
    validate(cfg)  # the components, the checkpoint's data section among them (the own keys passed above)
    datamodule = build_stored(plain(cfg.data), where)
    prior = instantiate(cfg.prior) if cfg.get("prior") is not None else None
    real = RealImages.load(datamodule, cfg.n_eval, cfg.n_fit)
    fid = FidSetup.load(datamodule, real, cfg.metrics.fid, model.device, cfg.seed)
    ev = evaluate_model(
        model,
        real,
        prior=prior,
        sampler=store_beside(instantiate(cfg.sampler), cfg.ckpt_path),
        n_samples=cfg.n_samples,
        probes=tuple(cfg.probes),
        fid=fid,
        seed=cfg.seed,
    )
    ev.metrics["setup"]["ckpt_path"] = str(cfg.ckpt_path)
    for what, section in (
        ("samples", "samples"),
        ("reconstructions", "reconstruction"),
        ("real floor", "real_baseline"),
    ):
        if "fidelity" in ev.metrics[section]:
            r = ev.metrics[section]["fidelity"]
            log.info(
                "FID of the %s %s; precision %.3f, recall %.3f",
                what,
                with_n(r["fid"], r["n"]),
                r["precision"],
                r["recall"],
            )
    if cfg.attributes.enabled and real.names:
        evaluate_attributes(model, real, datamodule, ev, cfg.attributes)
    write_outputs(ev, Path(cfg.paths.output_dir))
    log.info("evaluation written to %s", cfg.paths.output_dir)
    return ev.metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def _main(cfg: DictConfig) -> None:
    with reported_as_exit():
        evaluate(cfg)


ABOUT = """python -m nag.evaluate ckpt_path=<checkpoint> [prior=...] [sampler=prior|gmm|gaussian|flow] [key=value ...]

Evaluates one checkpoint: reconstructions (PSNR, SSIM), how well its codes fit the prior, samples of any prior or
of a density fitted to its codes after training (sample SWD, diversity, FID, KID,
precision/recall and density/coverage),
the far-away probes and attribute edits. Writes metrics.json, PNG figures and TensorBoard entries into
outputs/evaluate/<date>/<time>.

Common commands:
  python -m nag.evaluate ckpt_path=outputs/<date>/<time>/checkpoints/last.ckpt
  python -m nag.evaluate ckpt_path=<ckpt> prior=normal_mean0 prior.mean=100   # decode a far-away prior
  python -m nag.evaluate ckpt_path=<ckpt> sampler=gmm                          # ex-post GMM on its codes
  python -m nag.evaluate ckpt_path=<ckpt> sampler=flow                         # ex-post normalising flow"""


def main() -> None:
    print_help_and_exit(sys.argv[1:], "evaluate", ABOUT)
    quiet_third_party()
    _main()


if __name__ == "__main__":
    main()

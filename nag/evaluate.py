"""``python -m nag.evaluate ckpt_path=<ckpt> [prior=...] [sampler=prior|gmm|gaussian]``: evaluate one checkpoint.

Samples any checkpoint from any prior (``prior=normal_mean-3``, ``prior=normal_mean0 prior.mean=100``) or from
an ex-post density fitted to its training codes (``sampler=gmm``), and writes ``metrics.json``, PNG figures and
TensorBoard entries into its own run dir. The work is done by :mod:`nag.analysis.evaluation`.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

import nag  # noqa: F401  (registers the nag.* OmegaConf resolvers)
from nag.config.console import print_help_and_exit, quiet_third_party
from nag.config.errors import reported_as_exit


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.ckpt_path``, evaluate it and write everything to ``cfg.paths.output_dir``."""
    from nag.analysis.evaluation import evaluate as evaluate_checkpoint

    return evaluate_checkpoint(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def _main(cfg: DictConfig) -> None:
    with reported_as_exit():
        evaluate(cfg)


ABOUT = """python -m nag.evaluate ckpt_path=<checkpoint> [prior=...] [sampler=prior|gmm|gaussian] [key=value ...]

Evaluates one checkpoint: reconstructions (PSNR, SSIM), how well its codes fit the prior, samples of any prior or
of a density fitted to its codes after training (sample SWD, diversity, FID/KID with local Inception weights),
the far-away probes and attribute edits. Writes metrics.json, PNG figures and TensorBoard entries into
outputs/evaluate/<date>/<time>.

Common commands:
  python -m nag.evaluate ckpt_path=outputs/<date>/<time>/checkpoints/last.ckpt
  python -m nag.evaluate ckpt_path=<ckpt> prior=normal_mean0 prior.mean=100   # decode a far-away prior
  python -m nag.evaluate ckpt_path=<ckpt> sampler=gmm                          # ex-post GMM on its codes"""


def main() -> None:
    print_help_and_exit(sys.argv[1:], "evaluate", ABOUT)
    quiet_third_party()
    _main()


if __name__ == "__main__":
    main()

"""``python -m nag.sample ckpt_path=<ckpt> n=10000 out=<dir> [sampler=...] [prior=...] [format=png|npz]``.

Decodes ``n`` samples of any prior (the checkpoint's own unless ``prior=`` is given) or of an ex-post density
fitted to the training codes (``sampler=gmm``), and writes them as numbered PNGs (``000000.png`` …) or one
``samples.npz`` (``images``: ``(n, H, W, 3)`` uint8), so that pytorch-fid, clean-fid or torch-fidelity can score
them their own way. The draws are :func:`nag.analysis.evaluation.evaluate_sampling`'s for the same ``seed``,
``sampler`` and ``n_fit`` (its FID samples at ``metrics.fid.n_samples=n``), quantised to 8 bits as FID's are.
"""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import hydra
from annotated_types import Ge, Le
from omegaconf import DictConfig

import nag  # noqa: F401  (registers the nag.* OmegaConf resolvers)
from nag.config.console import print_help_and_exit, quiet_third_party
from nag.config.errors import reported_as_exit

log = logging.getLogger(__name__)


@dataclass
class SampleKeys:
    """The keys of ``conf/sample.yaml``'s root (checked at composition)."""

    ckpt_path: str | None
    device: str
    seed: int
    # The samples are drawn in memory (float, then 8 bits): 200,000 at 64 px is ~10 GB; FID protocols use 10k-50k.
    n: Annotated[int, Ge(1), Le(200_000)]
    out: str | None
    overwrite: bool
    format: Literal["png", "npz"]
    n_fit: Annotated[int, Ge(2)]


def draw(model: Any, sampler: Any, prior: Any, codes: Any, n: int, seed: int) -> Any:
    """``n`` decoded samples in [0, 1] ``(n, 3, H, W)`` on the CPU: the evaluation's draw for this seed."""
    from nag.model.inference import batched

    sampler = sampler.fit(codes, prior)
    return batched(model.decode, sampler.sample(n, seed=seed), model.device)


def write_samples(images: Any, out: Any, fmt: str) -> list[Path]:
    """Images ``(n, 3, H, W)`` in [0, 1] as 8-bit files in ``out`` (an :class:`~nag.io.output.OutputDir`)."""
    import numpy as np
    from PIL import Image

    from nag.metrics.inception import to_uint8

    pixels = to_uint8(images).permute(0, 2, 3, 1).numpy()  # (n, H, W, 3)
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, images=pixels)
        return [out.write_bytes("samples.npz", buf.getvalue())]
    width = max(6, len(str(len(pixels) - 1)))
    files = []
    for i, p in enumerate(pixels):
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        files.append(out.write_bytes(f"{i:0{width}d}.png", buf.getvalue()))
    return files


def sample(cfg: DictConfig) -> list[Path]:
    import torch

    from nag.analysis.evaluation import encode_images
    from nag.analysis.runs import open_for_command
    from nag.config.compose import plain
    from nag.config.errors import UserInputError, instantiate
    from nag.config.schema import validate
    from nag.io.output import OutputDir
    from nag.runs.trusted import build_stored
    from nag.samplers.flow import store_beside

    validate(cfg, {"": SampleKeys}, components=False)  # its own keys (n, format, ...) before any file is read
    out_path = Path(cfg.out).expanduser() if cfg.get("out") else Path(cfg.paths.output_dir) / "samples"
    if out_path.is_dir() and any(out_path.iterdir()) and not cfg.overwrite:
        raise UserInputError(f"out={out_path} is not empty: give an empty folder, or overwrite=true to write into it.")
    if out_path.exists() and not out_path.is_dir():
        raise UserInputError(f"out={out_path} is a file, not a folder.")
    sampler = store_beside(instantiate(cfg.sampler), cfg.get("ckpt_path"))
    model, where = open_for_command(cfg, "sample", need_data=sampler.needs_codes)
    validate(cfg)  # the components, the checkpoint's data section among them (the own keys passed above)
    prior = instantiate(cfg.prior) if cfg.get("prior") is not None else model.prior
    out = OutputDir(out_path, "out")
    codes = torch.zeros(0, prior.dim)  # sampling a prior encodes nothing
    if sampler.needs_codes:
        dm = build_stored(plain(cfg.data), where)
        train = dm.dataset("train")
        codes = encode_images(model, dm.fixed_batch("train", min(cfg.n_fit, len(train)))[0])
    files = write_samples(draw(model, sampler, prior, codes, cfg.n, cfg.seed), out, cfg.format)
    log.info("%d samples written to %s", cfg.n, out_path)
    return files


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def _main(cfg: DictConfig) -> None:
    with reported_as_exit():
        sample(cfg)


ABOUT = """python -m nag.sample ckpt_path=<checkpoint> n=10000 out=<dir> [sampler=prior|gmm|gaussian|flow] [prior=...]

Writes n decoded samples as numbered PNGs (format=png) or one samples.npz (format=npz, images (n, H, W, 3) uint8)
for any other FID tool; the same draws as nag.evaluate's for the same seed. A non-empty out is refused unless
overwrite=true.

Common commands:
  python -m nag.sample ckpt_path=outputs/<date>/<time>/checkpoints/last.ckpt n=10000 out=samples/
  python -m nag.sample ckpt_path=<ckpt> sampler=gmm n=10000 out=samples_gmm/ format=npz
  python -m pytorch_fid samples/ <folder of real images>        # e.g. score them with pytorch-fid"""


def main() -> None:
    print_help_and_exit(sys.argv[1:], "sample", ABOUT)
    quiet_third_party()
    _main()


if __name__ == "__main__":
    main()

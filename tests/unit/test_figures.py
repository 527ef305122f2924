"""The figure helpers' own choices: which directions an edit grid shows, the PNGs the report writes, and the
defaults the report's figures and latent-fit numbers rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nag.model.latent_edit import chosen
from nag.model.latent_fit import latent_fit
from nag.model.priors import NormalPrior
from nag.training.figures import PAD_VALUE, image_grid, interpolation_grid, png_bytes


def test_chosen_keeps_the_wanted_directions_in_order_else_the_first_six() -> None:
    directions = {name: torch.full((2,), float(i)) for i, name in enumerate("ABCDEFGH")}
    assert list(chosen(directions, ["F", "Z", "B"])) == ["F", "B"]  # wanted ones the data has, in the asked order
    assert list(chosen(directions, ["Z"])) == list("ABCDEF")  # none of them: the first six
    assert list(chosen(directions, [], fallback=2)) == ["A", "B"]
    assert chosen({}, ["A"]) == {}


def test_png_bytes_are_lossless_by_default_and_256_colours_on_request(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    grid = torch.rand(3, 20, 30, generator=g)
    (tmp_path / "full.png").write_bytes(png_bytes(grid))
    full = Image.open(tmp_path / "full.png")
    assert full.mode == "RGB" and full.size == (30, 20)
    expected = grid.mul(255).add(0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()  # torchvision's rounding
    assert np.array_equal(np.asarray(full), expected)
    (tmp_path / "palette.png").write_bytes(png_bytes(grid, palette=True))
    small = Image.open(tmp_path / "palette.png")
    assert small.mode == "P" and small.size == (30, 20) and len(small.getcolors(1000)) <= 256
    error = np.abs(np.asarray(small.convert("RGB"), dtype=int) - expected.astype(int)).mean()
    assert error < 20  # quantised, not garbage (600 random colours into 256)


def test_interpolation_grid_defaults_to_11_columns() -> None:
    class Identity(torch.nn.Module):  # a real module with the interpolate API: codes are the images themselves
        def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
            t = torch.linspace(0, 1, steps).view(1, steps, 1, 1, 1)
            return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)

    grid = interpolation_grid(Identity(), torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    assert grid.shape == (3, 2 + 6, 2 + 11 * 6)  # one row of 11 faces of 4 px, padding 2


def test_latent_fit_defaults_are_the_recorded_ones() -> None:
    """Reports compare latent-fit numbers across runs: they are computed with seed 0 and 128 directions."""
    prior = NormalPrior(4, mean=-3.0, variance=2.0)
    z = prior.sample(64, generator=torch.Generator().manual_seed(9)) + 0.5
    assert latent_fit(z, prior) == latent_fit(z, prior, seed=0, n_projections=128)
    assert latent_fit(z, prior)["swd"] != latent_fit(z, prior, seed=1)["swd"]  # the seed matters, so does keeping it


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_latent_fit_takes_codes_of_any_float_type(dtype: torch.dtype) -> None:
    prior = NormalPrior(4)
    z = prior.sample(32, generator=torch.Generator().manual_seed(1))
    fit, ref = latent_fit(z.to(dtype), prior), latent_fit(z.to(dtype).float(), prior)
    assert fit == ref


def test_palette_pngs_clamp_to_the_unit_range_and_keep_black_and_white(tmp_path: Path) -> None:
    grid = torch.zeros(3, 4, 4)
    grid[:, 0], grid[:, 1], grid[:, 2] = -0.3, 1.0, 1.7  # decoder outputs can leave [0, 1] slightly
    (tmp_path / "p.png").write_bytes(png_bytes(grid, palette=True))
    rgb = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert (rgb[0] == 0).all() and (rgb[1] == 255).all() and (rgb[2] == 255).all() and (rgb[3] == 0).all()


def test_image_grids_are_eight_faces_wide_with_white_separators() -> None:
    """nag.evaluate's sample (64) and probe (16) grids rely on the default: 8 × 8 and 8 × 2 faces."""
    grid = image_grid(torch.zeros(16, 3, 4, 4))
    assert grid.shape == (3, 2 + 2 * 6, 2 + 8 * 6)
    assert (grid[:, 0] == PAD_VALUE).all() and (grid[:, 2:6, 2:6] == 0).all()

"""Small CelebA copies written the way users have them on disk (real JPEGs, real metadata formats)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from nag.data.faces import render, sample_params

# The 40 CelebA attributes, in the official order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()

# 20 train, 8 valid, 8 test images, with official names (numbers inside the official partitions).
OFFICIAL = {
    **{f"{i:06d}.jpg": 0 for i in range(1, 21)},
    **{f"{i:06d}.jpg": 1 for i in range(162_771, 162_779)},
    **{f"{i:06d}.jpg": 2 for i in range(182_638, 182_646)},
}
WIDTH, HEIGHT = 44, 54  # CelebA's 178 x 218 aspect, scaled down


def face_jpeg(index: int, mode: str = "RGB", size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    face = render([sample_params(7, 0, index)], 64)[0]
    img = Image.fromarray(face).resize(size, Image.BICUBIC).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def attribute_table(names: list[str]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {n: rng.choice([-1, 1], size=len(CELEBA_ATTRIBUTES)) for n in names}


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(face_jpeg(i))


def write_torchvision(root: Path, partition: bool = True, attributes: bool = True, names: dict | None = None) -> Path:
    """``root/celeba/img_align_celeba/*.jpg`` + space-separated .txt metadata, as torchvision extracts it."""
    names = names or OFFICIAL
    base = root / "celeba"
    write_images(base / "img_align_celeba", list(names))
    if partition:
        (base / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in names.items()))
    if attributes:
        table = attribute_table(list(names))
        lines = [f"{len(names)}\n", " ".join(CELEBA_ATTRIBUTES) + " \n"]
        lines += [f"{n} " + " ".join(f"{v:2d}" for v in vals) + "\n" for n, vals in table.items()]
        (base / "list_attr_celeba.txt").write_text("".join(lines))
    return base


def write_kaggle(root: Path, names: dict | None = None) -> Path:
    """``root/img_align_celeba/img_align_celeba/*.jpg`` + comma-separated .csv metadata with header rows."""
    names = names or OFFICIAL
    write_images(root / "img_align_celeba" / "img_align_celeba", list(names))
    (root / "list_eval_partition.csv").write_text(
        "image_id,partition\n" + "".join(f"{n},{s}\n" for n, s in names.items())
    )
    table = attribute_table(list(names))
    rows = [f"{n}," + ",".join(str(v) for v in vals) + "\n" for n, vals in table.items()]
    (root / "list_attr_celeba.csv").write_text("image_id," + ",".join(CELEBA_ATTRIBUTES) + "\n" + "".join(rows))
    return root


def write_folder(root: Path, n: int = 40) -> Path:
    """A plain folder of face images with arbitrary names and no metadata."""
    write_images(root, [f"face_{i:03d}.jpg" for i in range(n)])
    return root

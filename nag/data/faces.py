"""Procedural face renderer behind the synthetic-faces dataset.

Faces are drawn from signed-distance shapes (ellipses, boxes, rings) with analytic anti-aliasing: each shape's
coverage of a pixel is ``clip(0.5 − sdf / pixel, 0, 1)``. Rendering is vectorised over a chunk of faces, so a
20k-image split at 64 px takes seconds, and each face depends only on ``(seed, split, index)``.

Attributes follow CelebA's names where CelebA has one (``Pale_Skin``, ``Black_Hair``, ``Bangs``, ``Smiling``,
``Eyeglasses``, ``No_Beard``, ``Wearing_Hat``, ...), with unequal frequencies so some are rare, as in CelebA.
``Dark_Skin``, ``Red_Hair``, ``Long_Hair`` and ``Sunglasses`` have no CelebA counterpart (CelebA folds
sunglasses into ``Eyeglasses``; here they are separate so the rarest feature can be studied on its own).
"""

from __future__ import annotations

import numpy as np

# Name and frequency of every binary attribute the renderer draws (in the order of the attribute tensor).
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Pale_Skin",
    "Dark_Skin",
    "Black_Hair",
    "Brown_Hair",
    "Blond_Hair",
    "Gray_Hair",
    "Red_Hair",
    "Bald",
    "Long_Hair",
    "Bangs",
    "Smiling",
    "Eyeglasses",
    "Sunglasses",
    "No_Beard",
    "Wearing_Hat",
)

SKIN_TONES = np.array(
    [
        [1.00, 0.87, 0.78],
        [0.96, 0.80, 0.68],
        [0.89, 0.70, 0.55],
        [0.78, 0.57, 0.41],
        [0.60, 0.42, 0.29],
        [0.40, 0.27, 0.18],
    ],
    dtype=np.float32,
)
SKIN_P = np.array([0.06, 0.30, 0.25, 0.17, 0.12, 0.10])  # tone 0 is Pale_Skin, tones 4-5 Dark_Skin
HAIR_COLOURS = np.array(
    [[0.08, 0.07, 0.07], [0.38, 0.24, 0.13], [0.90, 0.77, 0.45], [0.70, 0.70, 0.72], [0.72, 0.28, 0.12]],
    dtype=np.float32,
)  # Black, Brown, Blond, Gray, Red
HAIR_P = np.array([0.33, 0.29, 0.20, 0.09, 0.09])
BACKGROUNDS = np.array(
    [
        [0.85, 0.85, 0.88],
        [0.55, 0.70, 0.85],
        [0.80, 0.72, 0.60],
        [0.45, 0.55, 0.45],
        [0.90, 0.80, 0.82],
        [0.35, 0.35, 0.40],
        [0.95, 0.92, 0.80],
        [0.60, 0.50, 0.65],
    ],
    dtype=np.float32,
)
IRIS_COLOURS = np.array([[0.30, 0.18, 0.08], [0.25, 0.45, 0.70], [0.30, 0.50, 0.30], [0.10, 0.08, 0.06]], np.float32)

P_BALD, P_LONG, P_BANGS, P_SMILE = 0.05, 0.45, 0.15, 0.48
P_EYEGLASSES, P_SUNGLASSES, P_BEARD, P_HAT = 0.06, 0.03, 0.08, 0.05


def sample_params(seed: int, split: int, index: int) -> dict[str, np.ndarray]:
    """All random choices for one face, a pure function of ``(seed, split, index)``."""
    rng = np.random.default_rng([seed, split, index])
    tone = rng.choice(len(SKIN_TONES), p=SKIN_P)
    hair = rng.choice(len(HAIR_COLOURS), p=HAIR_P)
    glasses_u, hat_u = rng.random(), rng.random()
    bald = rng.random() < P_BALD
    hat = hat_u < P_HAT
    p = {
        "cx": rng.uniform(-0.10, 0.10),
        "cy": rng.uniform(-0.02, 0.12),
        "s": rng.uniform(0.78, 1.02),
        "aspect": rng.uniform(0.88, 1.08),
        "eye_sep": rng.uniform(0.17, 0.23),
        "tone": tone,
        "hair": hair,
        "bald": bald,
        "long": (not bald) and rng.random() < P_LONG,
        "bangs": (not bald) and (not hat) and rng.random() < P_BANGS,
        "smiling": rng.random() < P_SMILE,
        "eyeglasses": glasses_u < P_EYEGLASSES,
        "sunglasses": P_EYEGLASSES <= glasses_u < P_EYEGLASSES + P_SUNGLASSES,
        "beard": rng.random() < P_BEARD,
        "hat": hat,
        "skin_rgb": SKIN_TONES[tone] + rng.uniform(-0.03, 0.03, 3),
        "hair_rgb": HAIR_COLOURS[hair] + rng.uniform(-0.04, 0.04, 3),
        "bg_rgb": BACKGROUNDS[rng.integers(len(BACKGROUNDS))] + rng.uniform(-0.08, 0.08, 3),
        "bg_shade": rng.uniform(-0.15, 0.15),
        "shirt_rgb": rng.uniform(0.05, 0.95, 3),
        "hat_rgb": rng.uniform(0.05, 0.9, 3),
        "iris_rgb": IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
        "frame_rgb": rng.uniform(0.0, 0.35, 3),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in p.items()}


def attributes(params: dict[str, np.ndarray]) -> np.ndarray:
    """Binary attribute vector (len(ATTRIBUTE_NAMES),) of one face."""
    tone, hair, bald = int(params["tone"]), int(params["hair"]), bool(params["bald"])
    has_hair = not bald
    values = {
        "Pale_Skin": tone == 0,
        "Dark_Skin": tone >= 4,
        "Black_Hair": has_hair and hair == 0,
        "Brown_Hair": has_hair and hair == 1,
        "Blond_Hair": has_hair and hair == 2,
        "Gray_Hair": has_hair and hair == 3,
        "Red_Hair": has_hair and hair == 4,
        "Bald": bald,
        "Long_Hair": bool(params["long"]),
        "Bangs": bool(params["bangs"]),
        "Smiling": bool(params["smiling"]),
        "Eyeglasses": bool(params["eyeglasses"]),
        "Sunglasses": bool(params["sunglasses"]),
        "No_Beard": not bool(params["beard"]),
        "Wearing_Hat": bool(params["hat"]),
    }
    return np.array([values[n] for n in ATTRIBUTE_NAMES], dtype=np.uint8)


# --- signed distances on a (N, H, W) grid; every parameter is an (N, 1, 1) array -------------------------


def _ellipse(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on the boundary)."""
    u, v = (x - cx) / rx, (y - cy) / ry
    q = np.sqrt(u * u + v * v) + 1e-9
    grad = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / q + 1e-9
    return (q - 1.0) / grad


def _box(x: np.ndarray, y: np.ndarray, cx, cy, hx, hy, r) -> np.ndarray:
    """Signed distance to a box of half-size (hx, hy) with corner radius r."""
    qx, qy = np.abs(x - cx) - hx + r, np.abs(y - cy) - hy + r
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


class _Canvas:
    """An (N, H, W, 3) float image being painted shape by shape."""

    def __init__(self, n: int, size: int) -> None:
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
        self.y, self.x = np.meshgrid(coords, coords, indexing="ij")  # (H, W)
        self.x, self.y = self.x[None], self.y[None]  # (1, H, W)
        self.pixel = 2.0 / size
        self.img = np.zeros((n, size, size, 3), dtype=np.float32)

    def coverage(self, sdf: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        a = np.clip(0.5 - sdf / self.pixel, 0.0, 1.0)
        return a if mask is None else a * mask

    def paint(self, alpha: np.ndarray, rgb: np.ndarray) -> None:
        """Alpha-blend colour ``rgb`` (N, 3) or (N, H, W, 3) with coverage ``alpha`` (N, H, W)."""
        colour = rgb if rgb.ndim == 4 else rgb[:, None, None, :]
        self.img += alpha[..., None] * (colour - self.img)


def render(params: list[dict[str, np.ndarray]], size: int) -> np.ndarray:
    """Render faces to uint8 ``(N, size, size, 3)``; vectorised over the N faces."""
    n = len(params)
    P = {k: np.stack([p[k] for p in params]) for k in params[0]}

    def col(key: str) -> np.ndarray:
        return np.clip(P[key], 0, 1)  # (N, 3)

    def val(key: str) -> np.ndarray:
        return P[key].astype(np.float32)[:, None, None]  # (N, 1, 1)

    cv = _Canvas(n, size)
    x, y = cv.x, cv.y
    cx, cy, s, asp = val("cx"), val("cy"), val("s"), val("aspect")
    skin, hair = col("skin_rgb"), col("hair_rgb")
    has_hair = 1.0 - val("bald")

    # Background: a vertical gradient.
    cv.paint(
        np.ones((n, size, size), np.float32),
        np.clip(col("bg_rgb")[:, None, None, :] + val("bg_shade")[..., None] * y[..., None], 0, 1),
    )
    # Shoulders and neck.
    cv.paint(cv.coverage(_ellipse(x, y, cx, cy + 1.12 * s, 0.88 * s, 0.48 * s)), col("shirt_rgb"))
    cv.paint(cv.coverage(_box(x, y, cx, cy + 0.62 * s, 0.17 * s * asp, 0.25 * s, 0.05 * s)), skin * 0.85)
    # Long hair falls behind the head down to the shoulders.
    back = _box(x, y, cx, cy + 0.18 * s, 0.60 * s * asp, 0.78 * s, 0.42 * s)
    cv.paint(cv.coverage(back, val("long") * has_hair), hair * 0.9)
    # Ears and face, with a little horizontal shading for roundness.
    for side in (-1.0, 1.0):
        cv.paint(
            cv.coverage(_ellipse(x, y, cx + side * 0.49 * s * asp, cy + 0.02 * s, 0.08 * s, 0.14 * s)), skin * 0.92
        )
    face = _ellipse(x, y, cx, cy, 0.48 * s * asp, 0.62 * s)
    shade = 1.0 - 0.18 * np.clip(((x - cx) / (0.48 * s * asp)) ** 2, 0, 1)
    cv.paint(cv.coverage(face), np.clip(skin[:, None, None, :] * shade[..., None], 0, 1))
    # Beard: the lower face, framing the mouth.
    beard = np.maximum(_ellipse(x, y, cx, cy + 0.05 * s, 0.5 * s * asp, 0.64 * s), (cy + 0.16 * s) - y)
    cv.paint(cv.coverage(beard, val("beard")), hair * 0.85)
    # Hair on top of the head; bangs lower the hairline over the forehead.
    hairline = cy - 0.30 * s + 0.20 * s * val("bangs")
    top = np.maximum(_ellipse(x, y, cx, cy - 0.10 * s, 0.54 * s * asp, 0.62 * s), y - hairline)
    cv.paint(cv.coverage(top, has_hair), hair)
    # Eyebrows, eyes (white, iris, pupil).
    eye_y, sep = cy - 0.08 * s, val("eye_sep") * s * asp
    for side in (-1.0, 1.0):
        ex = cx + side * sep
        cv.paint(cv.coverage(_ellipse(x, y, ex, eye_y - 0.12 * s, 0.10 * s, 0.025 * s)), hair * 0.8)
        cv.paint(cv.coverage(_ellipse(x, y, ex, eye_y, 0.085 * s, 0.05 * s)), np.full((n, 3), 0.97, np.float32))
        cv.paint(cv.coverage(_ellipse(x, y, ex, eye_y, 0.042 * s, 0.042 * s)), col("iris_rgb"))
        cv.paint(cv.coverage(_ellipse(x, y, ex, eye_y, 0.018 * s, 0.018 * s)), np.zeros((n, 3), np.float32))
    # Nose.
    cv.paint(cv.coverage(_ellipse(x, y, cx, cy + 0.12 * s, 0.045 * s, 0.10 * s)), skin * 0.82)
    # Mouth: a closed lip line, or an open smile (lower half-ellipse) showing teeth.
    lip = np.clip(skin * np.array([0.85, 0.5, 0.5], np.float32), 0, 1)
    smile = val("smiling")
    cv.paint(cv.coverage(_ellipse(x, y, cx, cy + 0.34 * s, 0.15 * s, 0.03 * s), 1 - smile), lip)
    mouth = np.maximum(_ellipse(x, y, cx, cy + 0.29 * s, 0.18 * s, 0.11 * s), (cy + 0.29 * s) - y)
    cv.paint(cv.coverage(mouth, smile), np.tile(np.array([[0.45, 0.08, 0.10]], np.float32), (n, 1)))
    teeth = np.maximum(mouth + 0.01 * s, y - (cy + 0.335 * s))
    cv.paint(cv.coverage(teeth, smile), np.full((n, 3), 0.95, np.float32))
    # Glasses: clear rings, or filled dark lenses.
    glasses, sun = val("eyeglasses"), val("sunglasses")
    frame = col("frame_rgb")
    for side in (-1.0, 1.0):
        ex = cx + side * sep
        lens = _ellipse(x, y, ex, eye_y, 0.13 * s, 0.10 * s)
        cv.paint(cv.coverage(lens, sun), np.full((n, 3), 0.06, np.float32))
        cv.paint(cv.coverage(np.abs(lens) - 0.018 * s, np.maximum(glasses, sun)), frame)
    bridge = _box(x, y, cx, eye_y - 0.02 * s, sep - 0.13 * s, 0.012 * s, 0.0)
    cv.paint(cv.coverage(bridge, np.maximum(glasses, sun)), frame)
    # Hat: crown and brim, over the hair.
    hat, hat_rgb = val("hat"), col("hat_rgb")
    crown = np.maximum(_ellipse(x, y, cx, cy - 0.40 * s, 0.56 * s * asp, 0.42 * s), y - (cy - 0.36 * s))
    cv.paint(cv.coverage(crown, hat), hat_rgb)
    cv.paint(cv.coverage(_ellipse(x, y, cx, cy - 0.36 * s, 0.78 * s * asp, 0.07 * s), hat), hat_rgb * 0.8)
    return (np.clip(cv.img, 0, 1) * 255 + 0.5).astype(np.uint8)

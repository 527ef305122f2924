"""Measuring images, with no Lightning: reconstruction and sample quality (quality.py: PSNR, SSIM, multi-scale
SWD, diversity), the FID Inception network (inception.py) and the field's metrics on its features (fidelity.py:
FID, KID, precision/recall, density/coverage)."""

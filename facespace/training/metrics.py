"""How close reconstructions are to their images: the numbers every reconstruction result reports.

Example:
    >>> mse_psnr(np.zeros((1, 2, 2, 1)), np.full((1, 2, 2, 1), 0.1))
    (0.010000000000000002, 20.0)
"""

from __future__ import annotations

import numpy as np


def mse_psnr(clean: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """Mean squared error over all pixels and the PSNR (dB, peak 1) of that mean error."""
    mse = float(np.mean((np.asarray(clean, np.float64) - np.asarray(estimate, np.float64)) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return mse, psnr

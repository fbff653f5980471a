"""Image grids and PNG output, shared by every pipeline that writes pictures."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facespace.files import write_bytes_atomic


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (clipped) -> uint8 with 3 channels. Accepts (H, W), (H, W, C) or (n, H, W, C)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 4:
        x = x[..., :3]
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def make_grid(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    ncols: int | None = None,
    scale: int = 1,
    pad: int = 2,
    background: int = 255,
) -> np.ndarray:
    """Tile `(n, H, W, C)` float images in [0, 1] into one `(h, w, 3)` uint8 picture.

    Args:
        images: the tiles, all of one shape.
        ncols: tiles per row (default: about square).
        scale: integer nearest-neighbour upscaling, so 32x32 faces are visible.
        pad: pixels between tiles.
        background: grey level of the padding.
    """
    tiles = to_uint8(np.stack(list(images)) if not isinstance(images, np.ndarray) else images)
    if tiles.ndim == 3:
        tiles = tiles[None]
    n, h, w, _ = tiles.shape
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    ncols = ncols or max(1, int(np.ceil(np.sqrt(n))))
    nrows = max(1, int(np.ceil(n / ncols)))
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = tiles[i]
    return out


def png_bytes(picture: np.ndarray) -> bytes:
    """Encode an `(h, w, 3)` uint8 (or float in [0, 1]) picture as PNG bytes."""
    from PIL import Image

    pic = picture if picture.dtype == np.uint8 else to_uint8(picture)
    buf = io.BytesIO()
    Image.fromarray(pic).save(buf, format="PNG")
    return buf.getvalue()


def save_png(picture: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a picture to `path` as PNG, atomically."""
    return write_bytes_atomic(path, png_bytes(picture))


def save_grid(images: np.ndarray, path: str | os.PathLike, **grid_options) -> Path:
    """`make_grid` then `save_png`."""
    return save_png(make_grid(images, **grid_options), path)

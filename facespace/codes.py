"""Public verbs `encode` and `reconstruct`: images in, codes or images out.

`images` may be an `(n, H, W, C)` float32 array (refused, with the reason, when its shape is not
the model's), a `FaceSet`, or a list of image paths (loaded and resized to the model's size and
channels with the same preprocessing as `load_faces`).

Example:
    >>> import facespace as fs                                   # doctest: +SKIP
    >>> model = fs.load_model("runs/conv32")                     # doctest: +SKIP
    >>> fs.encode(model, ["a.jpg", "b.jpg"]).shape               # doctest: +SKIP
    (2, 32)
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from facespace.errors import FacespaceError
from facespace.models.base import check_images
from facespace.protocol import has_decoder


def as_images(model: Any, images: Any, *, crop: str = "lfw") -> np.ndarray:
    """Return `images` as the model's `(n, H, W, C)` float32, loading paths if given.

    Args:
        model: anything with `image_shape`.
        images: an array, a FaceSet, a path, or a sequence of paths.
        crop: the crop applied to image files (as `load_faces`).
    """
    shape = tuple(model.image_shape)
    if hasattr(images, "images") and hasattr(images, "paths"):  # a FaceSet
        images = images.images
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, Sequence) and len(images) and isinstance(images[0], (str, os.PathLike)):
        from facespace.data import load_images

        return load_images([str(p) for p in images], size=shape[0], crop=crop, grayscale=shape[2] == 1)
    return check_images(images, shape)


def encode(model: Any, images: Any, *, batch_size: int = 256) -> np.ndarray:
    """Codes of images.

    Args:
        model: any `Encoder`.
        images: `(n, H, W, C)` float32 in [0, 1], a FaceSet, or image paths.
        batch_size: images per forward pass.

    Returns:
        `(n, d)` float32.
    """
    x = as_images(model, images)
    try:
        return model.encode(x, batch_size=batch_size)
    except TypeError:  # an Encoder whose encode takes no batch_size
        return model.encode(x)


def reconstruct(model: Any, images: Any, *, batch_size: int = 256) -> np.ndarray:
    """Images passed through an autoencoder's code and back.

    Args:
        model: an `Autoencoder`.
        images: `(n, H, W, C)` float32 in [0, 1], a FaceSet, or image paths.
        batch_size: images per forward pass.

    Returns:
        `(n, H, W, C)` float32, clipped to [0, 1].
    """
    if not has_decoder(model):
        raise FacespaceError(f"a {getattr(model, 'kind', type(model).__name__)!r} model has no decoder; reconstruct needs an autoencoder")
    codes = encode(model, images, batch_size=batch_size)
    try:
        out = model.decode(codes, batch_size=batch_size)
    except TypeError:
        out = model.decode(codes)
    return np.clip(out, 0.0, 1.0)


def mse_psnr(clean: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """Mean squared error over all pixels and the PSNR (dB, peak 1) of that mean error."""
    mse = float(np.mean((np.asarray(clean, np.float64) - np.asarray(estimate, np.float64)) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return mse, psnr

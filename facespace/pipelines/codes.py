"""Public verbs `encode`, `decode` and `reconstruct`: images in, codes out, and codes back to images.

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

import inspect
import os
from typing import Any, Callable, Sequence

import numpy as np

from facespace.errors import FacespaceError
from facespace.models.base import check_images
from facespace.protocol import has_decoder


def as_images(model: Any, images: Any, *, crop: Any = "recorded") -> np.ndarray:
    """Return `images` as the model's `(n, H, W, C)` float32, loading paths if given.

    Args:
        model: anything with `image_shape`.
        images: an array, a FaceSet, a path, or a sequence of paths.
        crop: the crop applied to image files (as `load_faces`); "recorded": the one the model was
            trained with (`facespace.data.crops.model_crop`; "lfw" for models that recorded none).
    """
    shape = tuple(model.image_shape)
    if hasattr(images, "images") and hasattr(images, "paths"):  # a FaceSet
        images = images.images
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, Sequence) and len(images) and isinstance(images[0], (str, os.PathLike)):
        from facespace.data.crops import resolve_crop
        from facespace.data import load_images

        crop = resolve_crop(model, crop)
        return load_images([str(p) for p in images], size=shape[0], crop=crop, grayscale=shape[2] == 1)
    return check_images(images, shape)


def takes_batch_size(method: Callable[..., Any]) -> bool:
    """True when `method` accepts a `batch_size` keyword (some Encoders, e.g. `PixelEncoder`, do not).

    The signature is read rather than a call tried and a `TypeError` caught, so that a real
    `TypeError` raised inside a model is never mistaken for "no batch_size" and silently retried.
    """
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: call them plainly
        return False
    return any(p.name == "batch_size" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _call_batched(method: Callable[..., Any], x: np.ndarray, batch_size: int) -> np.ndarray:
    return method(x, batch_size=batch_size) if takes_batch_size(method) else method(x)


def _kind(model: Any) -> str:
    return str(getattr(model, "kind", None) or type(model).__name__)


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
    return _call_batched(model.encode, x, batch_size)


def decode(model: Any, codes: Any, *, batch_size: int = 256) -> np.ndarray:
    """Faces drawn from codes: any code facespace stores (index, gallery, export) back to an image.

    Args:
        model: an `Autoencoder` (the model that made the codes).
        codes: `(n, d)` or one `(d,)` code, float, finite; `d` must be the model's code size.
        batch_size: codes per forward pass.

    Returns:
        `(n, H, W, C)` float32, clipped to [0, 1] (`n = 1` for one `(d,)` code).

    Raises:
        FacespaceError: a model without a decoder (naming its kind), codes of another size (naming
            both sizes), not 1-D/2-D, or non-finite.

    Example:
        >>> from facespace.models.pca import PCAAutoencoder
        >>> x = np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32)
        >>> pca = PCAAutoencoder(code_size=4).fit(x)
        >>> decode(pca, encode(pca, x[:3])).shape
        (3, 8, 8, 1)
    """
    if not has_decoder(model):
        raise FacespaceError(
            f"a {_kind(model)!r} model has no decoder, so its codes cannot be turned back into faces; "
            "use an autoencoder (pca, linear, conv, vae)"
        )
    z = np.asarray(codes, dtype=np.float32)
    if z.ndim == 1:
        z = z[None]
    d = int(model.code_size)
    if z.ndim != 2:
        raise FacespaceError(f"codes must be (n, {d}) or ({d},); got an array of shape {z.shape}")
    if z.shape[1] != d:
        raise FacespaceError(
            f"codes have {z.shape[1]} values each but this {_kind(model)!r} model decodes codes of size {d}; "
            "decode them with the model that made them"
        )
    if not np.isfinite(z).all():
        raise FacespaceError("codes contain NaN or infinite values; drop those rows")
    if len(z) == 0:
        return np.zeros((0, *model.image_shape), np.float32)
    if int(batch_size) < 1:
        raise FacespaceError(f"batch_size must be >= 1; got {batch_size}")
    out = _call_batched(model.decode, z, int(batch_size))
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


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
        raise FacespaceError(f"a {_kind(model)!r} model has no decoder; reconstruct needs an autoencoder")
    return decode(model, encode(model, images, batch_size=batch_size), batch_size=batch_size)


def mse_psnr(clean: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """Mean squared error over all pixels and the PSNR (dB, peak 1) of that mean error."""
    mse = float(np.mean((np.asarray(clean, np.float64) - np.asarray(estimate, np.float64)) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return mse, psnr

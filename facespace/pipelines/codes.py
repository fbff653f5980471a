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

from typing import Any

import numpy as np

from facespace.data.inputs import as_images
from facespace.errors import FacespaceError
from facespace.protocol import Autoencoder, Encoder, has_decoder, model_kind



def encode(model: Encoder, images: Any, *, batch_size: int = 256) -> np.ndarray:
    """Codes of images.

    Args:
        model: any `Encoder`.
        images: `(n, H, W, C)` float32 in [0, 1], a FaceSet, or image paths.
        batch_size: images per forward pass.

    Returns:
        `(n, d)` float32.
    """
    x = as_images(model, images)
    return model.encode(x, batch_size=batch_size)


def decode(model: Autoencoder, codes: Any, *, batch_size: int = 256) -> np.ndarray:
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
            f"a {model_kind(model)!r} model has no decoder, so its codes cannot be turned back into faces; "
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
            f"codes have {z.shape[1]} values each but this {model_kind(model)!r} model decodes codes of size {d}; "
            "decode them with the model that made them"
        )
    if not np.isfinite(z).all():
        raise FacespaceError("codes contain NaN or infinite values; drop those rows")
    if len(z) == 0:
        return np.zeros((0, *model.image_shape), np.float32)
    if int(batch_size) < 1:
        raise FacespaceError(f"batch_size must be >= 1; got {batch_size}")
    out = model.decode(z, batch_size=int(batch_size))
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def reconstruct(model: Autoencoder, images: Any, *, batch_size: int = 256) -> np.ndarray:
    """Images passed through an autoencoder's code and back.

    Args:
        model: an `Autoencoder`.
        images: `(n, H, W, C)` float32 in [0, 1], a FaceSet, or image paths.
        batch_size: images per forward pass.

    Returns:
        `(n, H, W, C)` float32, clipped to [0, 1].
    """
    if not has_decoder(model):
        raise FacespaceError(f"a {model_kind(model)!r} model has no decoder; reconstruct needs an autoencoder")
    return decode(model, encode(model, images, batch_size=batch_size), batch_size=batch_size)

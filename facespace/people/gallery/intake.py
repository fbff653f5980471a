"""What enrolment does before it writes: images turned into codes with their sources, pixel hashes
and face sizes, and the checks of a batch of people (quality refusals, an image given twice or to
two people), all before the gallery's transaction opens; and the check of codes given ready-made.

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> x = np.random.default_rng(0).random((2, 4, 4, 1), dtype=np.float32)
    >>> z, sources, hashes, _, _ = encode_faces(PixelEncoder(size=4, channels=1), x)
    >>> z.shape, sources
    ((2, 16), ['array[0]', 'array[1]'])
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from facespace.data.crops import RECORDED, crop_side, resolve_crop
from facespace.data.inputs import as_images
from facespace.people.gallery.store import GalleryError, check_name
from facespace.people.quality import LowQualityError, describe_refusals, face_quality
from facespace.protocol import Encoder

__all__ = ["check_codes", "encode_faces", "prepare_people"]


def encode_faces(model: Encoder | None, images: Any, sizes: Any = None, crop: Any = RECORDED, names: Any = None
                 ) -> tuple[np.ndarray, list[str], list[str], np.ndarray, Any]:
    """Encode faces for a gallery.

    Args:
        model: the gallery's model (None: refused, saying to pass it).
        images: `(n, H, W, C)` float32 at the model's shape, or image paths.
        sizes: `n` face sides in source pixels where known; for files, the side of their crop.
        crop: how image files are cut (`facespace.data.crops`).
        names: what to call array images (default "array[i]"); files are called by their paths.

    Returns:
        `(codes (n, d) float32, sources, pixel hashes, images (n, H, W, C), face sizes)`; the hash
        is of the pixels (codes vary in the last bits).
    """
    if model is None:
        raise GalleryError("this gallery was opened without a model; pass the model it was built with")
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    sources = [str(p) for p in images] if isinstance(images, (list, tuple)) and images and \
        isinstance(images[0], (str, os.PathLike)) else None
    x = as_images(model, images, crop=crop, check_faces=True)
    z = np.asarray(model.encode(x), np.float32)
    if sources is None:
        sources = list(names) if names is not None else [f"array[{i}]" for i in range(len(z))]
    elif sizes is None:
        cut = resolve_crop(model, crop)
        sizes = [crop_side(p, cut) for p in sources]
    return z, sources, [hashlib.sha256(np.ascontiguousarray(img, "<f4").tobytes()).hexdigest() for img in x], x, sizes


def prepare_people(model: Encoder | None, people: dict[str, Any], *, force: bool, sizes: dict[str, Any] | None,
                   crop: Any, sources: dict[str, Any] | None) -> list[tuple[str, np.ndarray, list[str], list[str]]]:
    """Encode and check each person's images, as `Gallery.enroll_many` takes them.

    Returns:
        `[(name, codes (n, d), sources, pixel hashes)]` per person.

    Raises:
        LowQualityError: images that fail `face_quality` (unless `force`), each named with its reasons.
        GalleryError: an image given twice for one person, or for two people.
    """
    batches, refused = [], []
    for name, images in people.items():
        name = check_name(name)
        z, sources_, hashes, x, side = encode_faces(model, images, (sizes or {}).get(name), crop,
                                                    (sources or {}).get(name))
        if not force:
            q = face_quality(x, model=model, sizes=side, codes=z)
            refused += [(f"{s} ({name})", r) for s, r in zip(sources_, q) if not r.ok]
        if len(set(hashes)) < len(hashes):
            raise GalleryError(f"the images given for {name!r} contain the same image twice; pass each once")
        batches.append((name, z, sources_, hashes))
    if refused:
        raise LowQualityError(f"{len(refused)} image(s) refused for their quality; nothing was enrolled. "
                              "Use better photos, or enrol them anyway (force=True):\n"
                              + describe_refusals(*zip(*refused)))
    seen: dict[str, str] = {}
    for name, _, srcs, hashes in batches:
        for h, src in zip(hashes, srcs):
            if seen.setdefault(h, name) != name:
                raise GalleryError(f"{src} is given for both {seen[h]!r} and {name!r}; give each image to one person")
    return batches


def check_codes(codes: Any, meta: dict[str, str]) -> np.ndarray:
    """Codes given ready-made as `(n, d)` float32 (one `(d,)` code too), refused unless they have the
    gallery's code size (`meta["code_size"]`) and are finite."""
    z = np.asarray(codes, np.float32)
    z = z[None] if z.ndim == 1 else z
    d = int(meta["code_size"])
    if z.ndim != 2 or z.shape[1] != d:
        raise GalleryError(f"codes have shape {z.shape} but this gallery holds codes of size {d}; "
                           f"use codes made with its model ({meta.get('model_kind')} {meta.get('model_path')})")
    if not np.isfinite(z).all():
        raise GalleryError("codes contain NaN or infinite values")
    return z

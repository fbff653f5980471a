"""The embedded default: scikit-image's `lfw_subset()`, 200 grey 25x25 crops that ship in its wheel.

The first 100 images are faces and the last 100 are not; `labels["is_face"]` keeps that. The set
has no identities (`names=None`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from facespace.data.faceset import FaceSet
from facespace.data.images import Crop, crop_box, resample_filter

N_FACES = 100  # lfw_subset: images [0, 100) are faces, [100, 200) are not


def load_embedded(size: int = 32, *, crop: Crop = "lfw", grayscale: bool = False) -> FaceSet:
    """Load `skimage.data.lfw_subset()` at `size x size`.

    Args:
        size: output side; 25 keeps the original pixels, larger sizes are bilinear, smaller ones
            area-averaged.
        crop: see `facespace.data.images.crop_box`; "lfw" leaves these 25x25 crops whole.
        grayscale: keep one channel; otherwise grey is replicated to 3 channels.

    Returns:
        A FaceSet of 200 images `(200, size, size, C)` float32 in [0, 1], `names=None`,
        `labels["is_face"]` `(200,)` bool.
    """
    from skimage.data import lfw_subset

    raw = lfw_subset().astype(np.float32)  # (200, 25, 25) in [0, 1]
    n, h, w = raw.shape
    box = crop_box(crop, w, h, name="embedded lfw_subset")
    t, l, b, r = box if box is not None else (0, 0, h, w)
    resample = resample_filter(min(r - l, b - t), size)
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        img = Image.fromarray(raw[i])  # mode "F"
        out[i] = np.asarray(img.resize((size, size), resample, box=(l, t, r, b)), np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    images = out[..., None] if grayscale else np.repeat(out[..., None], 3, axis=3)
    return FaceSet(
        images=images,
        names=None,
        paths=np.array([f"embedded:lfw_subset/{i:03d}" for i in range(n)]),
        source="embedded",
        labels={"is_face": np.arange(n) < N_FACES},
    )

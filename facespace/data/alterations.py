"""Altered copies of an image, as a user's near-duplicates are made: re-encoded, resized, trimmed, brightened.

`alter_image(image, "jpeg70")` gives the file bytes of one copy; `facespace.pipelines.duplicate_threshold`
encodes such copies to learn how far apart a set's copies lie.

Example:
    >>> from PIL import Image
    >>> len(alter_image(Image.new("RGB", (20, 20)), "resize50")) > 0
    True
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from facespace.errors import FacespaceError

# the alterations `alter_image` knows (P: a number), e.g. jpeg70, resize50, trim2, corner2, brighter10
KINDS = ("jpeg", "resize", "trim", "corner", "brighter", "darker")
MAX_SIDE = 1024  # larger photos are shrunk to this longer side before they are altered (memory)


def alter_image(image: Image.Image, alteration: str) -> bytes:
    """The file bytes of one altered copy of `image`.

    Args:
        image: a Pillow image (grey images stay grey).
        alteration: "jpegQ" (JPEG at quality Q), "resizeP" (P % of each side, Lanczos, PNG),
            "trimP" (P % off every edge, PNG), "cornerP" (P % off the top and left edges, PNG),
            "brighterP" / "darkerP" (brightness times 1 +- P %, PNG).

    Returns:
        The encoded file, as `load_images` reads it.

    Raises:
        FacespaceError: an unknown alteration.
    """
    img = image.convert("L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
    w, h = img.size
    name = alteration.rstrip("0123456789")
    try:
        p = int(alteration[len(name):])
    except ValueError:
        raise FacespaceError(f"unknown alteration {alteration!r}; expected one of: {', '.join(k + 'P' for k in KINDS)}") from None
    options: dict[str, Any] = {"format": "PNG"}
    if name == "jpeg":
        options = {"format": "JPEG", "quality": p}
    elif name == "resize":
        img = img.resize((max(1, round(w * p / 100)), max(1, round(h * p / 100))), Image.Resampling.LANCZOS)
    elif name in ("trim", "corner"):
        dx, dy = round(w * p / 100), round(h * p / 100)
        img = img.crop((dx, dy, w - dx, h - dy) if name == "trim" else (dx, dy, w, h))
    elif name in ("brighter", "darker"):
        img = ImageEnhance.Brightness(img).enhance(1 + p / 100 if name == "brighter" else 1 - p / 100)
    else:
        raise FacespaceError(f"unknown alteration {alteration!r}; expected one of: {', '.join(k + 'P' for k in KINDS)}")
    buf = io.BytesIO()
    img.save(buf, **options)
    return buf.getvalue()


def open_upright(image: Any) -> Image.Image:
    """A Pillow image upright (EXIF orientation applied: the copies carry no orientation tag), its
    longer side at most `MAX_SIDE`."""
    if not isinstance(image, Image.Image):
        with Image.open(image) as im:
            image = ImageOps.exif_transpose(im)
            image.load()
    if max(image.size) > MAX_SIDE:
        s = MAX_SIDE / max(image.size)
        image = image.resize((round(image.size[0] * s), round(image.size[1] * s)), Image.Resampling.BOX)
    return image


def upright_size(path: Any) -> tuple[int, int]:
    """A file's upright size."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def as_picture(image: np.ndarray) -> Image.Image:
    arr = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)

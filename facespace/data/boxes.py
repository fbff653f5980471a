"""Where in an image a face is cut: crop specs ("lfw", "tight", "lfw:T,L,B,R", boxes) as pixel boxes.

`crop_box` turns a spec into `(top, left, bottom, right)` pixels of one image; `face_frame` and
`pad_edges` give a face crop the margins a model with a wider box expects. Pure geometry: the
decoding is `facespace.data.images`.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from PIL import Image

from facespace.errors import DataError

# The course convention: the central 90x90 of a 250x250 LFW image, `img[80:-80, 80:-80]`.
LFW_SIZE = (250, 250)
LFW_BOX = (80, 80, 170, 170)  # (top, left, bottom, right) in pixels
# the face of a 250x250 LFW original, eyes to chin (crop "tight"; best for the identity verifier)
TIGHT_BOX = (70, 65, 190, 185)
# "lfw:T,L,B,R": that box of a 250x250 LFW original; an image of any other size is already a face
# crop and is used whole (how a model's recorded crop is applied to files, `data.crops.resolve_crop`)
LFW_ONLY = "lfw:"

Crop = Union[None, str, Sequence[float]]


def crop_box(crop: Crop, width: int, height: int, *, name: str = "image") -> tuple[int, int, int, int] | None:
    """Resolve a crop spec into `(top, left, bottom, right)` pixels of a `width x height` image.

    Args:
        crop: None (whole image); "lfw" (the central 90x90 of a 250x250 LFW image, i.e.
            `img[80:-80, 80:-80]`; images of any other size are used whole, as they are not LFW
            originals); "tight" (the box `TIGHT_BOX`, eyes to chin of an LFW original; a smaller image
            is refused); "lfw:T,L,B,R" (that box of a 250x250 LFW original, any other size used
            whole); or `(top, left, bottom, right)` in pixels, negatives counting from the far
            edge like numpy slices, or all four in [0, 1] as fractions of the height/width.
        width, height: the image size.
        name: the image, for error messages.

    Returns:
        The box, or None for the whole image.

    Raises:
        DataError: a box that is empty or does not fit the image.
    """
    if crop is None:
        return None
    if isinstance(crop, str):
        if crop.lower() == "lfw":
            return LFW_BOX if (width, height) == LFW_SIZE else None
        if crop.lower().startswith(LFW_ONLY):
            return lfw_only_box(crop) if (width, height) == LFW_SIZE else None
        if crop.lower() != "tight":
            raise DataError(f"unknown crop {crop!r}; expected 'lfw', 'tight', None or (top, left, bottom, right)")
        crop = TIGHT_BOX
    box = tuple(crop)
    if len(box) != 4:
        raise DataError(f"crop {crop!r} must have 4 numbers (top, left, bottom, right)")
    if all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in box):
        t, l, b, r = (round(box[0] * height), round(box[1] * width), round(box[2] * height), round(box[3] * width))
    else:
        t, l, b, r = (int(v) for v in box)
        t, b = (v + height if v < 0 else v for v in (t, b))
        l, r = (v + width if v < 0 else v for v in (l, r))
    if not (0 <= t < b <= height and 0 <= l < r <= width):
        raise DataError(f"{name}: crop {tuple(crop)} does not fit the {width}x{height} image; "
                        f"pass crop=None or a box inside the image")
    return (t, l, b, r)


def check_crop(crop: Crop) -> None:
    """Raise a DataError unless `crop` is a valid spec (see `crop_box`); checked once per load."""
    if crop is None or (isinstance(crop, str) and crop.lower() in ("lfw", "tight")):
        return
    if isinstance(crop, str) and crop.lower().startswith(LFW_ONLY):
        lfw_only_box(crop)
        return
    if isinstance(crop, str):
        raise DataError(f"unknown crop {crop!r}; expected 'lfw', 'tight', None or (top, left, bottom, right)")
    try:
        box = tuple(crop)
    except TypeError:
        raise DataError(f"crop {crop!r}: expected 'lfw', None or (top, left, bottom, right)") from None
    if len(box) != 4 or not all(isinstance(v, (int, float, np.integer, np.floating)) for v in box):
        raise DataError(f"crop {crop!r} must have 4 numbers (top, left, bottom, right)")
    fractions = all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in box)
    if (fractions or all(v >= 0 for v in box)) and not (box[0] < box[2] and box[1] < box[3]):
        raise DataError(f"crop {crop!r}: the box is empty; expected top < bottom and left < right")


def lfw_only_box(spec: str) -> tuple[int, int, int, int]:
    """The pixel box of an "lfw:T,L,B,R" spec, checked to lie inside a 250x250 LFW original."""
    try:
        box = tuple(int(v) for v in spec[len(LFW_ONLY):].split(","))
    except ValueError:
        raise DataError(f"crop {spec!r}: expected lfw:top,left,bottom,right in pixels of a 250x250 LFW image") from None
    if len(box) != 4 or not (0 <= box[0] < box[2] <= LFW_SIZE[1] and 0 <= box[1] < box[3] <= LFW_SIZE[0]):
        raise DataError(f"crop {spec!r}: expected a non-empty box inside a 250x250 LFW image")
    return box


def face_frame(crop: Crop, width: int, height: int) -> tuple[float, float, float, float] | None:
    """The margins to add around an image that is already a face crop, for a model whose box is wider.

    A model trained on LFW originals records its box ("lfw:T,L,B,R"); an image of another size is a
    face crop already, taken to be framed as the tight face (eyes to chin, `TIGHT_BOX`). When the
    model's box holds more than that face (hair, jaw: the identity ensemble's union box), the image
    is padded out by the box's margins around `TIGHT_BOX` (its edge pixels repeated), so each part of
    the model sees the face where it learned to, instead of a face blown up to the whole box.

    Returns:
        `(top, left, bottom, right)` margins as fractions of the image's height and width, or None
        (nothing to add: another crop, a 250x250 LFW original, or a box inside the tight face).
    """
    if not (isinstance(crop, str) and crop.lower().startswith(LFW_ONLY)) or (width, height) == LFW_SIZE:
        return None
    t, l, b, r = lfw_only_box(crop.lower())
    ft, fl, fb, fr = TIGHT_BOX
    if not (t <= ft and l <= fl and b >= fb and r >= fr) or (t, l, b, r) == TIGHT_BOX:
        return None
    fh, fw = fb - ft, fr - fl
    return ((ft - t) / fh, (fl - l) / fw, (b - fb) / fh, (r - fr) / fw)


def pad_edges(img: Image.Image, frame: tuple[float, float, float, float]) -> Image.Image:
    """`img` with margins `(top, left, bottom, right)` (fractions of its height/width) of its edge pixels."""
    arr = np.asarray(img)
    h, w = arr.shape[:2]
    pads = [(round(frame[0] * h), round(frame[2] * h)), (round(frame[1] * w), round(frame[3] * w))]
    return Image.fromarray(np.pad(arr, pads + [(0, 0)] * (arr.ndim - 2), mode="edge"))

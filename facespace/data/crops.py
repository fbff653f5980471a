"""The crop a model was trained with: named, recorded in its checkpoint, applied again at use.

A model learns from faces cut out of their files in one way (`load_faces(crop=...)`). The same cut
must be made whenever an image file reaches the model later (`facespace people verify`, `evaluate-lfw`,
`people enroll/identify`, `encode`), or the model sees faces framed differently from its training.
So `train` records the crop in the checkpoint (`checkpoint_info["extra"]["crop"]`) and every loader
of image files for a model asks `model_crop(model)`.

Crops by name:
    - "tight": the 120x120 face box `(70, 65, 190, 185)` (top, left, bottom, right) of a 250x250
      LFW original: eyes to chin, little background. Best measured for the identity verifier.
    - "lfw": the central 90x90 of a 250x250 LFW original; images of another size are used whole
      (the data layer's default, and what a model without a recorded crop gets).
    - "none": the whole image.
    - "T,L,B,R": a box in pixels (negatives count from the far edge) or four fractions in [0, 1].

A box is cut from every file; a file too small for it is refused by name. Arrays given to a model
are never cropped: they are taken to be at the model's shape already.

Example:
    >>> parse_crop("tight"), parse_crop("none"), parse_crop("10,10,-10,-10")
    ((70, 65, 190, 185), None, (10, 10, -10, -10))
    >>> crop_record(parse_crop("tight"))
    [70, 65, 190, 185]
"""

from __future__ import annotations

from typing import Any

from facespace.data.images import TIGHT_BOX  # (top, left, bottom, right) of the face in a 250x250 LFW original
from facespace.data.images import LFW_ONLY, check_crop, crop_box, lfw_only_box, open_image
from facespace.errors import DataError
from facespace.protocol import Encoder

__all__ = ["TIGHT_BOX", "CROP_NAMES", "DEFAULT_CROP", "RECORDED", "parse_crop", "crop_record", "crop_name",
           "model_crop", "resolve_crop"]
CROP_NAMES = ("tight", "lfw", "none")
# what a model with no recorded crop gets: the data layer's default
DEFAULT_CROP = "lfw"
# `crop=RECORDED` (the default of the loaders below) means "the crop recorded with the model"
RECORDED = "recorded"


def parse_crop(spec: Any) -> Any:
    """A crop spec for the data layer (`load_faces`, `load_images`) from a name, text or box.

    Args:
        spec: "tight", "lfw", "none" (or None), "T,L,B,R" text, or a 4-sequence of numbers.

    Returns:
        "lfw", None, or a `(top, left, bottom, right)` tuple.

    Raises:
        DataError: an unknown name or a malformed box, naming the choices.
    """
    if spec is None:
        return None
    if isinstance(spec, str) and spec.strip().lower().startswith(LFW_ONLY):
        return LFW_ONLY + ",".join(str(v) for v in lfw_only_box(spec.strip().lower()))
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text and not text[0].isdigit() and text[0] not in "-." and text not in ("tight", "lfw", "none", "no", "off"):
            raise DataError(f"unknown crop {spec!r}; expected one of: {', '.join(CROP_NAMES)}, or top,left,bottom,right")
        crop = _parse_text(text)
    else:
        crop = tuple(spec)
    check_crop(crop)
    return crop


def _parse_text(text: str) -> Any:
    """'lfw', 'tight', 'none' (or '', 'no', 'off'), or 'top,left,bottom,right' (pixels, or fractions in [0, 1])."""
    if text in ("", "none", "no", "off"):
        return None
    if text == "lfw":
        return "lfw"
    if text == "tight":
        return TIGHT_BOX
    parts = text.split(",")
    try:
        values = [float(p) if "." in p else int(p) for p in parts]
    except ValueError:
        raise DataError(f"crop {text!r}: expected 'lfw', 'tight', 'none' or four numbers top,left,bottom,right") from None
    if len(values) != 4:
        raise DataError(f"crop {text!r}: expected four numbers top,left,bottom,right")
    return tuple(values)


def _box(crop: Any) -> Any:
    """`crop` parsed, an "lfw:T,L,B,R" spec as its box."""
    crop = parse_crop(crop)
    return lfw_only_box(crop) if isinstance(crop, str) and crop.startswith(LFW_ONLY) else crop


def crop_record(crop: Any) -> Any:
    """The JSON form kept in a checkpoint: "lfw", None, or `[top, left, bottom, right]`."""
    crop = _box(crop)
    return crop if crop is None or isinstance(crop, str) else list(crop)


def crop_name(crop: Any) -> str:
    """A short name for messages: tight, lfw, none, or the box as T,L,B,R."""
    crop = _box(crop)
    if crop is None or isinstance(crop, str):
        return crop or "none"
    return "tight" if tuple(crop) == TIGHT_BOX else ",".join(str(v) for v in crop)


def model_crop(model: Encoder) -> Any:
    """The crop recorded with `model` (as `parse_crop` returns it), or `DEFAULT_CROP` if none was."""
    extra = (getattr(model, "checkpoint_info", None) or {}).get("extra") or {}
    if "crop" not in extra:
        return DEFAULT_CROP
    return parse_crop(extra["crop"])


def resolve_crop(model: Encoder, crop: Any = RECORDED) -> Any:
    """`crop` as a data-layer spec for files a model is about to read.

    `RECORDED` (the default) gives the model's own crop as it applies to files: a pixel box recorded
    from training on LFW cuts 250x250 LFW originals only, and an image of any other size is taken
    to be a face crop already and used whole ("lfw:T,L,B,R"), so a 92x112 portrait needs no option.
    A crop the caller names is applied as named.
    """
    if isinstance(crop, str) and crop == RECORDED:
        recorded = model_crop(model)
        if isinstance(recorded, tuple) and not all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in recorded):
            return LFW_ONLY + ",".join(str(int(v)) for v in recorded)
        return recorded
    return parse_crop(crop)


def crop_side(path: str, crop: Any = "lfw") -> int | None:
    """The side, in file pixels, of the face crop `load_images` takes from an image file (None when
    the file cannot be read: it is refused, by name, when it is loaded)."""
    try:
        with open_image(path) as img:
            w, h = img.size
        box = crop_box(crop, w, h)
    except Exception:  # unreadable files are refused (by name) when they are loaded
        return None
    return min(w, h) if box is None else min(box[2] - box[0], box[3] - box[1])

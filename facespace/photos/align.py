"""Align and crop a detected face so that it looks like the training data.

The standard training crop is LFW deep-funneled's central 90x90 of a 250x250 image
(`img[80:170, 80:170]`), area-averaged to `size x size`. A detector's box is not that square:
each detector draws its box at its own place and scale around a face. `CROP_GEOMETRY` says, per
detector, where the central crop lies relative to the box (offset of its centre and its side, in
box widths); the numbers are medians measured on LFW deep-funneled images
(`benchmarks/detection.py` re-measures them). Alignment then

1. levels the eyes: the roll comes from the eye landmarks when the detector gives them, else from
   the roll at which the detector found the face (`Detection.angle`, 0 for a plain search);
2. cuts the square that the training crop would be, in the face's own (levelled) frame, at the
   photo's own resolution, and
3. area-averages it to `size x size` (or upsamples it when the face is smaller than `size`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facespace.photos.detect import Detection, check_image
from facespace.errors import FacespaceError

# the training crop: central 90x90 of LFW's 250x250
LFW_SIDE = 250
LFW_CROP = 90

# largest roll believed from two eye detections; beyond it the "eyes" are more likely brows or nostrils
MAX_EYE_ROLL = 30.0


@dataclass(frozen=True)
class CropGeometry:
    """Where the training crop lies relative to a detector's box `(x, y, w, h)`.

    Attributes:
        dx: crop centre minus box centre, along the face's x axis, in box widths.
        dy: the same along the face's y axis (down), in box widths.
        side: crop side in box widths.
    """

    dx: float
    dy: float
    side: float


# Medians over LFW deep-funneled images whose face was found near the centre
# (400 random images, seed 0, in benchmarks/detection.py, which prints them again).
CROP_GEOMETRY: dict[str, CropGeometry] = {
    "lbp": CropGeometry(dx=-0.013, dy=-0.015, side=0.865),
    "haar": CropGeometry(dx=0.0, dy=0.004, side=0.783),
}


def eye_roll(landmarks: np.ndarray) -> float:
    """Roll in degrees (counter-clockwise positive on screen) of the line through two eyes.

    Args:
        landmarks: `(2, 2)` `[[x, y], [x, y]]` eye centres, in any order.
    """
    (x0, y0), (x1, y1) = sorted(np.asarray(landmarks, np.float64)[:2].tolist())
    # image y grows downwards, so a counter-clockwise tilt raises the right eye: y1 < y0
    return math.degrees(math.atan2(y0 - y1, x1 - x0))


def face_roll(detection: Detection) -> float:
    """The roll used to level a face: from its eyes when it has two plausible ones, else its `angle`."""
    if detection.landmarks is not None and len(detection.landmarks) >= 2:
        roll = eye_roll(detection.landmarks)
        if abs(roll) <= MAX_EYE_ROLL:
            return roll
    return float(detection.angle)


def align_face(
    image: np.ndarray,
    detection: Detection,
    *,
    size: int = 32,
    grayscale: bool = False,
    level: bool = True,
) -> np.ndarray:
    """Cut one face out of an image the way the training data was cut.

    Args:
        image: `(H, W)` or `(H, W, C)` (C = 1, 3 or 4) float32 in [0, 1] or uint8. Grey images
            give 3 equal channels unless `grayscale`; an alpha channel is composited onto white.
        detection: the face, from `facespace.photos.detect.detect_faces` on this image.
        size: side of the output in pixels (the model's input size).
        grayscale: one channel (ITU-R 601 luminance) instead of three.
        level: rotate so that the eyes are level (see `face_roll`); False keeps the photo upright.

    Returns:
        `(size, size, C)` float32 in [0, 1], C = 1 if `grayscale` else 3.

    Example:
        >>> img = np.random.default_rng(0).random((250, 250, 3), dtype=np.float32)
        >>> det = Detection(box=(75, 75, 100, 100), score=1.0, detector="lbp")
        >>> align_face(img, det, size=32).shape
        (32, 32, 3)
    """
    import cv2

    x = _as_rgb(check_image(image), grayscale)
    if size < 1:
        raise FacespaceError(f"size={size} must be a positive number of pixels, e.g. 32")
    geometry = CROP_GEOMETRY.get(detection.detector)
    if geometry is None:
        raise FacespaceError(
            f"no crop geometry for detector {detection.detector!r}; expected one of: {', '.join(CROP_GEOMETRY)}"
        )
    bx, by, bw, bh = detection.box
    if bw <= 0 or bh <= 0:
        raise FacespaceError(f"detection box {detection.box} has no area; expected (x, y, width, height) > 0")
    w = (bw + bh) / 2.0
    roll = math.radians(face_roll(detection)) if level else 0.0
    # the face's own axes in image coordinates (y down): "right" and "down" after a CCW roll
    right = np.array([math.cos(roll), -math.sin(roll)])
    down = np.array([math.sin(roll), math.cos(roll)])
    centre = np.array([bx + bw / 2.0, by + bh / 2.0]) + geometry.dx * w * right + geometry.dy * w * down
    side = geometry.side * w
    n = max(1, int(round(side)))  # crop at the photo's own resolution first
    step = side / n
    a = np.stack([right, down], axis=1) * step  # (2, 2): output (u, v) -> image offset
    # pixel centres: output pixel u covers [u, u+1); image pixel i has its centre at i + 0.5
    offset = centre - 0.5 + a @ np.array([0.5 - n / 2.0, 0.5 - n / 2.0])
    m = np.concatenate([a, offset[:, None]], axis=1)
    crop = cv2.warpAffine(
        x, m, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    if n != size:
        shrink = n > size
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    crop = np.clip(crop, 0.0, 1.0).astype(np.float32)
    return crop.reshape(size, size, -1)


def central_crop(image: np.ndarray, *, size: int = 32, grayscale: bool = False) -> np.ndarray:
    """The standard training crop of an LFW 250x250 image: `img[80:170, 80:170]` area-averaged to
    `size x size`. Scales with the image for other sides (the central 90/250 of it).

    Returns:
        `(size, size, C)` float32 in [0, 1].
    """
    import cv2

    x = _as_rgb(check_image(image), grayscale)
    h, w = x.shape[:2]
    ch, cw = round(h * LFW_CROP / LFW_SIDE), round(w * LFW_CROP / LFW_SIDE)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = np.ascontiguousarray(x[top : top + ch, left : left + cw])
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(crop, 0.0, 1.0).astype(np.float32).reshape(size, size, -1)


def _as_rgb(x: np.ndarray, grayscale: bool) -> np.ndarray:
    """Any accepted image -> `(H, W, 3)` (or `(H, W)` if `grayscale`) float32 in [0, 1]."""
    f = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if f.ndim == 2:
        f = f[..., None]
    if f.shape[-1] == 4:  # composite onto white, as an image viewer on a page would show it
        alpha = f[..., 3:4]
        f = f[..., :3] * alpha + (1.0 - alpha)
    if grayscale:
        if f.shape[-1] == 3:
            f = f @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            f = f[..., 0]
        return np.ascontiguousarray(f)
    if f.shape[-1] == 1:
        f = np.repeat(f, 3, axis=-1)
    return np.ascontiguousarray(f)

"""Find faces in an image: boxes, scores and (where the detector gives them) eye landmarks.

Every detector here runs offline from weights that ship inside an installed package; nothing is
downloaded. Two backends:

- ``"lbp"`` (the default): OpenCV's LBP frontal-face cascade (``lbpcascade_frontalface_opencv.xml``),
  which ships inside scikit-image (``skimage.data.lbp_frontal_face_cascade_filename()``) and runs on
  scikit-image's cascade engine. It gives boxes and scores, no landmarks. It works on any OpenCV
  version, because it does not use OpenCV at all.
- ``"dlib-hog"`` and ``"dlib-cnn"`` (the optional extra ``facespace[dlib]``): dlib's HOG detector and
  its MMOD CNN detector (slower; finds small and turned faces), with dlib's 5-point landmarks, whose
  eye corners give the eye landmarks.
- ``"haar"``: OpenCV's Haar frontal-face and eye cascades from ``cv2.data.haarcascades``, with eye
  detections as landmarks. OpenCV 5 dropped ``CascadeClassifier`` and its bundled cascade files,
  so this backend needs ``opencv-python-headless<5``; with OpenCV 5 it raises a `FacespaceError`
  saying so.

Cascades find upright faces (about +-15 degrees of roll). ``angles`` runs the detector on rotated
copies of the image too; a face is then reported with the roll at which it scored best, which
`facespace.photos.align` uses to level the eyes when no eye landmarks exist.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facespace.errors import FacespaceError

DETECTORS = ("auto", "lbp", "haar", "dlib-hog", "dlib-cnn")
# the detectors that come with the optional extra facespace[dlib] (they give 5 landmarks)
DLIB_DETECTORS = ("dlib-hog", "dlib-cnn")

# fewest agreeing raw windows for a face, per backend: on LFW (benchmarks/detection.py) lbp at 6 keeps
# 97% recall with 0.06 extra boxes per image (at 4: 0.15; at 10: 95% recall, 0.03)
MIN_NEIGHBORS = {"lbp": 6, "haar": 5}


@dataclass(frozen=True)
class Detection:
    """One face found in an image.

    Attributes:
        box: `(x, y, width, height)` int, in pixels of the image given to `detect_faces`;
            `x, y` is the top-left corner (x = column, y = row). For a face found at a roll
            `angle`, this is the upright square around the rotated face box.
        score: how sure the detector is; higher is surer. For the cascades, the number of
            overlapping raw detection windows that agree on this face (OpenCV's "neighbours").
        landmarks: `(2, 2)` float32 `[[x, y] of the eye on the image's left, [x, y] of the other]`
            in image pixels, or None when the detector gives none.
        angle: in-plane roll of the face in degrees, counter-clockwise positive as seen on screen;
            rotating the image clockwise by `angle` about the face centre levels the eyes.
        detector: the backend that found it (each draws its box its own way; see
            `facespace.photos.align.CROP_GEOMETRY`).

    Example:
        >>> d = Detection(box=(10, 20, 50, 50), score=12.0, landmarks=None)
        >>> d.center
        (35.0, 45.0)
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None = None
    angle: float = 0.0
    detector: str = "lbp"

    @property
    def center(self) -> tuple[float, float]:
        """`(x, y)` of the box centre."""
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


def to_gray_uint8(image: np.ndarray) -> np.ndarray:
    """`(H, W)`, `(H, W, 1|3|4)` float in [0, 1] or uint8 -> `(H, W)` uint8 luminance (ITU-R 601)."""
    x = np.asarray(image)
    scale = 1.0 if x.dtype == np.uint8 else 255.0
    if x.ndim == 3:
        x = x[..., :3] if x.shape[-1] == 4 else x
        if x.shape[-1] == 3:
            x = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            x = x[..., 0]
    if x.dtype != np.uint8:
        x = np.clip(np.asarray(x, np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an image array: `(H, W)` or `(H, W, C)` with C in 1, 3, 4; float in [0, 1] or uint8."""
    x = np.asarray(image)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] not in (1, 3, 4)):
        raise FacespaceError(
            f"{what} has shape {x.shape}; expected (H, W) or (H, W, C) with C = 1, 3 or 4 "
            "(one image, channels last; pass images one at a time)"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise FacespaceError(f"{what} is empty (shape {x.shape}); give a real picture")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise FacespaceError(f"{what} has dtype {x.dtype}; expected float32 in [0, 1] or uint8")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise FacespaceError(f"{what} contains NaN or infinite values; give pixel values in [0, 1]")
    return x


def detect_faces(
    image: np.ndarray,
    *,
    detector: str = "auto",
    min_size: int = 24,
    max_side: int = 800,
    min_neighbors: int | None = None,
    angles: Sequence[float] = (0.0,),
    scale_factor: float = 1.1,
) -> list[Detection]:
    """Find the faces in one image.

    Large images are first downscaled so that the longer side is at most `max_side`, for speed
    and against huge inputs; boxes are reported in the pixels of `image` all the same.

    Args:
        image: `(H, W)` or `(H, W, C)` (C = 1, 3 or 4) float32 in [0, 1] or uint8.
        detector: one of `DETECTORS`; "auto" is "haar" where this OpenCV has its cascades
            (OpenCV 4), else "lbp".
        min_size: smallest face side looked for, in pixels of the downscaled working image.
        max_side: longest side of the working image (larger images are downscaled first).
        min_neighbors: a face needs at least this many agreeing raw windows; higher means fewer
            false faces and more missed ones. None: the backend's `MIN_NEIGHBORS`.
        angles: rolls in degrees at which to look (each costs one more pass), e.g.
            `(-30, -15, 0, 15, 30)` to find tilted faces and measure their roll.
        scale_factor: step between the window sizes searched (> 1; smaller is slower and finer).

    Returns:
        The faces, best score first; an empty list when there is none.

    Raises:
        FacespaceError: bad image or option, or a backend this installation cannot run.

    Example:
        >>> from skimage.data import astronaut
        >>> faces = detect_faces(astronaut())   # doctest: +SKIP
        >>> faces[0].box, faces[0].score        # doctest: +SKIP
        ((186, 66, 78, 78), 26.0)
    """
    x = check_image(image)
    if detector not in DETECTORS:
        raise FacespaceError(f"unknown detector {detector!r}; expected one of: {', '.join(DETECTORS)}")
    if min_size < 8:
        raise FacespaceError(f"min_size={min_size} is too small; use at least 8 pixels")
    if max_side < min_size:
        raise FacespaceError(f"max_side={max_side} is smaller than min_size={min_size}; raise max_side")
    if not scale_factor > 1.0:
        raise FacespaceError(f"scale_factor={scale_factor} must be > 1 (e.g. 1.1)")
    if detector == "auto":
        detector = "haar" if _haar_available() else "lbp"
    if detector in DLIB_DETECTORS:
        return _dlib_detect(x, detector, min_size=min_size, max_side=max_side)
    if min_neighbors is None:
        min_neighbors = MIN_NEIGHBORS[detector]
    if min_neighbors < 1:
        raise FacespaceError(f"min_neighbors={min_neighbors} must be >= 1")
    gray = to_gray_uint8(x)
    h, w = gray.shape
    ratio = min(1.0, max_side / max(h, w))
    if ratio < 1.0:
        gray = _resize_area(gray, (max(1, round(w * ratio)), max(1, round(h * ratio))))
    find = _haar_windows if detector == "haar" else _lbp_windows
    found: list[Detection] = []
    for roll in angles:
        work, back = _rotated(gray, float(roll))
        for cx, cy, side, score, eyes in find(work, min_size, min_neighbors, scale_factor):
            # map the window centre back to the (downscaled) input, then to the original pixels
            px, py = back @ np.array([cx, cy, 1.0])
            if eyes is not None:
                eyes = (np.c_[eyes, np.ones(len(eyes))] @ back.T) / ratio
                eyes = eyes[np.argsort(eyes[:, 0])].astype(np.float32)
            s = side / ratio
            box = (int(round(px / ratio - s / 2)), int(round(py / ratio - s / 2)), int(round(s)), int(round(s)))
            found.append(Detection(box, float(score), eyes, 0.0 - float(roll), detector))
    return _merge_angles(found)


# ---- backends: each returns [(cx, cy, side, score, eyes (2, 2) or None)] in working pixels ----


@functools.lru_cache(maxsize=1)
def _lbp_cascade():
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def _lbp_windows(gray: np.ndarray, min_size: int, min_neighbors: int, scale_factor: float) -> list:
    h, w = gray.shape
    if min(h, w) < min_size:
        return []
    # intersection threshold > 1 turns off scikit-image's own merging: we get the raw windows
    # and group them ourselves, so that each face gets a score (its number of windows)
    raw = _lbp_cascade().detect_multi_scale(
        img=gray.astype(np.float32) / 255.0,
        scale_factor=scale_factor,
        step_ratio=1.0,
        min_size=(min_size, min_size),
        max_size=(min(h, w), min(h, w)),
        min_neighbor_number=1,
        intersection_score_threshold=2.0,
    )
    boxes = np.array([[d["c"], d["r"], d["width"], d["height"]] for d in raw], np.float64).reshape(-1, 4)
    out = []
    for group in _group_windows(boxes):
        if len(group) < min_neighbors:
            continue
        x, y, bw, bh = boxes[group].mean(axis=0)
        out.append((x + bw / 2, y + bh / 2, (bw + bh) / 2, len(group), None))
    return out


def _group_windows(boxes: np.ndarray, min_overlap: float = 0.5) -> list[np.ndarray]:
    """Connected groups of windows whose intersection covers > `min_overlap` of the smaller one."""
    n = len(boxes)
    if n == 0:
        return []
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    iw = np.clip(np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]), 0, None)
    ih = np.clip(np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]), 0, None)
    area = boxes[:, 2] * boxes[:, 3]
    linked = iw * ih > min_overlap * np.minimum(area[:, None], area[None])
    from scipy.sparse.csgraph import connected_components

    _, label = connected_components(linked, directed=False)
    return [np.flatnonzero(label == k) for k in range(label.max() + 1)]


def _haar_available() -> bool:
    import cv2

    return hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data") and hasattr(cv2.data, "haarcascades")


@functools.lru_cache(maxsize=1)
def _haar_cascades():
    import os

    import cv2

    if not _haar_available():
        raise FacespaceError(
            f"detector 'haar' needs OpenCV 4's CascadeClassifier and bundled cascades, which OpenCV "
            f"{cv2.__version__} no longer has; use detector='lbp', or install 'opencv-python-headless<5'"
        )
    faces = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    eyes = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_eye.xml"))
    if faces.empty() or eyes.empty():
        raise FacespaceError(f"OpenCV's cascade files are missing under {cv2.data.haarcascades}; reinstall opencv")
    return faces, eyes


def _haar_windows(gray: np.ndarray, min_size: int, min_neighbors: int, scale_factor: float) -> list:
    faces, eyes_cascade = _haar_cascades()
    boxes, _, weights = faces.detectMultiScale3(
        gray, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size),
        outputRejectLevels=True,
    )
    out = []
    for (x, y, w, h), weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights)):
        out.append((x + w / 2, y + h / 2, (w + h) / 2, float(weight), _haar_eyes(gray, (x, y, w, h), eyes_cascade)))
    return out


def _haar_eyes(gray: np.ndarray, box, cascade) -> np.ndarray | None:
    """Two eye centres in the upper half of a face box, one each side of the middle, or None."""
    x, y, w, h = (int(v) for v in box)
    top = gray[y : y + h // 2 + h // 8, x : x + w]
    found = np.reshape(cascade.detectMultiScale(top, 1.1, 3, minSize=(max(4, w // 8), max(4, w // 8))), (-1, 4))
    if len(found) < 2:
        return None
    centres = found[:, :2] + found[:, 2:] / 2.0
    on_left = centres[:, 0] < w / 2
    if on_left.all() or not on_left.any():
        return None
    # the largest eye window on each side of the face's middle
    pair = [centres[side][np.argmax(found[side][:, 2])] for side in (on_left, ~on_left)]
    return np.stack(pair).astype(np.float64) + np.array([x, y])


def _dlib_detect(image: np.ndarray, detector: str, *, min_size: int, max_side: int) -> list[Detection]:
    """dlib's HOG or CNN faces, upsampled once when small (its smallest window is 80 px, 40 after one
    upsampling), with eye landmarks from the 5-point model; boxes in `image`'s pixels."""
    from facespace.models.dlib_face import as_uint8_rgb, cnn_boxes, five_points, hog_boxes

    rgb = as_uint8_rgb(image)
    h, w = rgb.shape[:2]
    ratio = min(1.0, max_side / max(h, w))
    work = rgb if ratio == 1.0 else as_uint8_rgb(_resize_area(rgb, (max(1, round(w * ratio)), max(1, round(h * ratio)))))
    upsample = 1 if max(work.shape[:2]) <= 1000 else 0
    found = (hog_boxes if detector == "dlib-hog" else cnn_boxes)(work, upsample)
    out = []
    for (bx, by, bw, bh), score in found:
        box = tuple(int(round(v / ratio)) for v in (bx, by, bw, bh))
        if min(box[2], box[3]) * ratio < min_size:
            continue
        points = five_points(rgb, box)  # (5, 2): corners of one eye, of the other, nose base
        eyes = np.stack([points[0:2].mean(0), points[2:4].mean(0)])
        eyes = eyes[np.argsort(eyes[:, 0])].astype(np.float32)
        out.append(Detection(box, score, eyes, 0.0, detector))
    return out


# ---- geometry ----


def _resize_area(gray: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(gray, size_wh, interpolation=cv2.INTER_AREA)


def _rotated(gray: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """The image rotated counter-clockwise by `roll` degrees on an enlarged canvas, and the
    `(2, 3)` affine map from rotated pixels back to `gray`'s pixels."""
    if roll == 0.0:
        return gray, np.array([[1.0, 0, 0], [0, 1.0, 0]])
    import cv2

    h, w = gray.shape
    t = math.radians(roll)
    nw = int(math.ceil(abs(w * math.cos(t)) + abs(h * math.sin(t))))
    nh = int(math.ceil(abs(w * math.sin(t)) + abs(h * math.cos(t))))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), roll, 1.0)
    m[:, 2] += ((nw - w) / 2, (nh - h) / 2)
    work = cv2.warpAffine(gray, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    back = cv2.invertAffineTransform(m)
    return work, back


def _merge_angles(found: list[Detection], max_iou: float = 0.3) -> list[Detection]:
    """Non-maximum suppression across rolls: keep the best-scoring box of each face; its roll is
    the score-weighted mean of the rolls at which that face was found."""
    order = sorted(found, key=lambda d: -d.score)
    kept: list[tuple[Detection, list[Detection]]] = []
    for d in order:
        for k, members in kept:
            if _iou(k.box, d.box) > max_iou:
                members.append(d)
                break
        else:
            kept.append((d, [d]))
    out = []
    for best, members in kept:
        weights = np.array([m.score for m in members])
        roll = float(np.dot(weights, [m.angle for m in members]) / weights.sum())
        out.append(Detection(best.box, best.score, best.landmarks, roll, best.detector))
    return out


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)

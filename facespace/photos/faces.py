"""Faces in ordinary photos: read, detect, align and crop, ready for a model.

`faces_in_photo` is the single entry point for every command that takes "a whole photo" (the
`--detect` option of encode, search, verify, enrol, identify, morph, and the web app): one face
gives one `Face`, several give one each with its box, none gives an empty list (callers say
"no face found"; it is not an error).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from facespace.photos.align import align_face, face_roll
from facespace.photos.detect import Detection, check_image, detect_faces
from facespace.data.crops import RECORDED, resolve_crop
from facespace.data.inputs import aligned_images
from facespace.errors import FacespaceError
from facespace.protocol import Encoder, is_aligning

Photo = Union[str, os.PathLike, bytes, np.ndarray]

# Photos are read with their longer side at most this (JPEGs decode at reduced scale), which keeps
# huge photos cheap and still leaves faces far more pixels than a model's 32-128 px input.
READ_MAX_SIDE = 2048


@dataclass(frozen=True)
class Face:
    """One face found in a photo, cropped like the training data.

    Attributes:
        box: `(x, y, width, height)` int in the photo file's pixels (after EXIF rotation), also when
            it was searched downscaled (see `scale`).
        score: the detector's confidence, higher is surer (see `facespace.photos.detect.Detection`).
        crop: `(size, size, C)` float32 in [0, 1], C = 1 if grayscale else 3: the model's input.
        landmarks: `(2, 2)` float32 eye centres `[[x, y], [x, y]]` in the photo file's pixels, or None.
        angle: the roll in degrees (counter-clockwise positive) that was levelled.
        scale: pixels of the image the crop was cut from per file pixel (< 1 when a photo larger than
            `READ_MAX_SIDE` was downscaled on reading).

    Example:
        >>> from skimage.data import astronaut
        >>> faces = faces_in_photo(astronaut(), size=32)     # doctest: +SKIP
        >>> len(faces), faces[0].crop.shape                  # doctest: +SKIP
        (1, (32, 32, 3))
    """

    box: tuple[int, int, int, int]
    score: float
    crop: np.ndarray
    landmarks: np.ndarray | None = None
    angle: float = 0.0
    scale: float = 1.0


def read_photo(photo: Photo, *, max_side: int = READ_MAX_SIDE) -> tuple[np.ndarray, float]:
    """A photo as `(H, W, C)` float32 in [0, 1], and the scale it was read at.

    Paths and bytes go through `facespace.data.read_image`: EXIF orientation honoured, a pixel
    limit against decompression bombs, grey (C = 1) and RGBA (composited onto white) handled.
    Arrays are used as they are (uint8 or float in [0, 1]; 2-D grey allowed).

    Returns:
        `(image, scale)`: scale is image pixels per file pixel (< 1 when downscaled to `max_side`).

    Raises:
        DataError: a file that is missing, not an image, truncated or too large.
    """
    if isinstance(photo, np.ndarray):
        x = check_image(photo, "photo")
        return (x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)), 1.0
    if not isinstance(photo, (str, os.PathLike, bytes, bytearray)):
        raise FacespaceError(
            f"photo must be a path, encoded image bytes or an (H, W, C) array, not {type(photo).__name__}"
        )
    from facespace.data import read_image
    from facespace.data.images import open_image

    with open_image(photo) as img:  # header only: the size before any downscaling
        full = max(img.size)
    x = read_image(photo, max_side=max_side)
    return x, max(x.shape[:2]) / full


def faces_in_photo(
    photo: Photo,
    *,
    size: int = 32,
    grayscale: bool = False,
    detector: str = "auto",
    level: bool = True,
    max_faces: int | None = None,
    align: Any = None,
    **detect_options,
) -> list[Face]:
    """Find, align and crop every face in a photo. The one entry point for whole photos.

    Args:
        photo: a path, encoded image bytes, or an `(H, W[, C])` array (uint8 or float in [0, 1]).
        size: side of each crop: the model's input size (`model.image_shape[0]`).
        grayscale: one-channel crops (for a model with `image_shape[2] == 1`).
        detector: see `facespace.photos.detect.DETECTORS`.
        crop: without `detect`, how each file is cut (a data-layer spec, `facespace.data.crops`).
        level: rotate each face so that its eyes are level (see `facespace.photos.align.face_roll`).
        max_faces: keep at most this many faces, best score first (None: all).
        align: a model that cuts its own faces (`facespace.protocol.Aligning`), or None.
        **detect_options: passed to `facespace.photos.detect.detect_faces` (`min_size`, `max_side`,
            `min_neighbors`, `angles`, `scale_factor`).

    Returns:
        The faces, best score first; an empty list when there is no face.

    Raises:
        FacespaceError: an unreadable photo (a `DataError` naming it) or a bad option.
    """
    image, scale = read_photo(photo)
    return find_faces(image, scale=scale, size=size, grayscale=grayscale, detector=detector, level=level,
                      max_faces=max_faces, align=align, **detect_options)


def find_faces(
    image: np.ndarray,
    *,
    scale: float = 1.0,
    size: int = 32,
    grayscale: bool = False,
    detector: str = "auto",
    level: bool = True,
    max_faces: int | None = None,
    align: Any = None,
    **detect_options,
) -> list[Face]:
    """`faces_in_photo` on an image already read with `read_photo` (which gave `scale`).

    `align`: a model that cuts its own inputs (`facespace.protocol.Aligning`, dlib): each face is
    then cut by `align.align(image, box)` instead of `align_face` (`size` and `grayscale` unused)."""
    if max_faces is not None and max_faces < 1:
        raise FacespaceError(f"max_faces={max_faces} must be at least 1 (or None for all)")
    if not scale > 0:
        raise FacespaceError(f"scale={scale} must be > 0 (image pixels per file pixel)")
    found = detect_faces(image, detector=detector, **detect_options)
    found = found[:max_faces] if max_faces is not None else found
    faces = []
    for d in found:
        if align is not None:
            crop = align.align(image, d.box)
        else:
            crop = align_face(image, d, size=size, grayscale=grayscale, level=level)
        box = tuple(int(round(v / scale)) for v in d.box)
        eyes = None if d.landmarks is None else (np.asarray(d.landmarks) / scale).astype(np.float32)
        faces.append(Face(box, d.score, crop, eyes, face_roll(d) if level else 0.0, scale))
    return faces


def draw_boxes(
    image: np.ndarray, faces: list[Face] | list[Detection], *, scale: float = 1.0, max_side: int = 1600
) -> np.ndarray:
    """The photo with a numbered box (and eye dots) on each face, as an `(h, w, 3)` uint8 picture.

    Args:
        image: the photo as read, `(H, W[, C])`.
        faces: `Face`s (boxes in file pixels) or `Detection`s (boxes in `image` pixels, scale 1).
        scale: `image` pixels per box pixel (`read_photo`'s scale).
        max_side: larger pictures are shrunk so the longer side is at most this.
    """
    import cv2

    from facespace.grid import to_uint8

    x = check_image(image, "photo")
    pic = to_uint8(x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x)  # (H, W, 3) uint8
    h, w = pic.shape[:2]
    shrink = min(1.0, max_side / max(h, w))
    if shrink < 1.0:
        pic = cv2.resize(pic, (max(1, round(w * shrink)), max(1, round(h * shrink))), interpolation=cv2.INTER_AREA)
    s = shrink * scale  # picture pixels per box pixel
    pic = np.ascontiguousarray(pic)
    thick = max(1, round(max(pic.shape[:2]) / 300))
    for k, f in enumerate(faces):
        x, y, bw, bh = (v * s for v in f.box)
        cx, cy = x + bw / 2, y + bh / 2
        # the box turned by the face's roll, so a tilted face gets a tilted box
        rect = ((cx, cy), (bw, bh), -float(getattr(f, "angle", 0.0)))
        corners = cv2.boxPoints(rect).astype(np.int32)
        cv2.polylines(pic, [corners], True, (255, 40, 40), thick, cv2.LINE_AA)
        cv2.putText(pic, str(k), (int(x), max(12, int(y) - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.4, thick * 0.4), (255, 255, 0), thick, cv2.LINE_AA)
        if f.landmarks is not None:
            for ex, ey in np.asarray(f.landmarks) * s:
                cv2.circle(pic, (int(ex), int(ey)), thick + 1, (40, 255, 40), -1, cv2.LINE_AA)
    return pic


@dataclass(frozen=True)
class PhotoCrops:
    """Model inputs taken from image files, one per face (with `--detect`) or one per file.

    Attributes:
        images: `(n, size, size, C)` float32 in [0, 1].
        sources: `n` photo paths, one per crop (a photo with three faces appears three times).
        faces: `n` ints: which face of its photo (best score first); 0 without detection.
        boxes: `n` boxes `(x, y, width, height)` in file pixels, or None without detection.
        no_face: the photos in which no face was found (they give no crop).
    """

    images: np.ndarray
    sources: list[str]
    faces: list[int]
    boxes: list[tuple[int, int, int, int] | None]
    no_face: list[str]

    def __len__(self) -> int:
        return len(self.sources)

    def labels(self) -> list[str]:
        """One readable name per crop: the path, with `#k` for face k when detection ran."""
        return [s if b is None else f"{s}#{k}" for s, k, b in zip(self.sources, self.faces, self.boxes)]


def crops_from_photos(
    photos: list[str | os.PathLike],
    *,
    size: int = 32,
    grayscale: bool = False,
    detect: bool = False,
    max_faces: int | None = None,
    detector: str = "auto",
    crop: Any = "lfw",
    align: Any = None,
) -> PhotoCrops:
    """What every command that takes face images does with its files (`--detect` or not).

    Without `detect`, each file is one face already cropped like the training data (LFW central
    crop, as `load_images`). With `detect`, each file is a whole photo: every face found is used,
    each with its box; a photo without a face gives none and is listed in `no_face`.

    Args:
        photos: image paths.
        size: the model's input side (`model.image_shape[0]`).
        grayscale: one-channel crops (`model.image_shape[2] == 1`).
        detect: find, align and crop faces first (see `faces_in_photo`).
        max_faces: with `detect`, keep at most this many faces per photo (None: all).
        detector: see `facespace.photos.detect.DETECTORS`.
        crop: without `detect`, how each file is cut (a data-layer spec, `facespace.data.crops`).
        align: a model that cuts its own faces (`facespace.protocol.Aligning`): files and detected
            faces are cut by it (`crop` then as `facespace.data.inputs.aligned_images` takes it).

    Raises:
        DataError: a file that is missing, not an image, truncated or too large (named).
    """
    channels = 1 if grayscale else 3
    paths = [str(p) for p in photos]
    if not detect and align is not None:
        images = aligned_images(align, paths, crop=crop) if paths else np.zeros((0, *align.image_shape), np.float32)
        return PhotoCrops(images, paths, [0] * len(paths), [None] * len(paths), [])
    if not detect:
        from facespace.data import load_images

        images = load_images(paths, size=size, crop=crop, grayscale=grayscale) if paths else np.zeros((0, size, size, channels), np.float32)
        return PhotoCrops(images, paths, [0] * len(paths), [None] * len(paths), [])
    crops, sources, index, boxes, none = [], [], [], [], []
    for p in paths:
        found = faces_in_photo(p, size=size, grayscale=grayscale, detector=detector, max_faces=max_faces, align=align)
        if not found:
            none.append(p)
        for k, f in enumerate(found):
            crops.append(f.crop)
            sources.append(p)
            index.append(k)
            boxes.append(f.box)
    images = np.stack(crops).astype(np.float32) if crops else np.zeros((0, size, size, channels), np.float32)
    return PhotoCrops(images, sources, index, boxes, none)


def model_crops(model: Encoder, files: list[str | os.PathLike], *, detect: bool, crop: Any = RECORDED,
                max_faces: int | None = None, detector: str = "auto") -> PhotoCrops:
    """`crops_from_photos` at a model's input shape: what every face-taking command feeds the model.
    Without `detect` files are cut with `crop` (default: the model's own, `facespace.data.crops`); a
    model that cuts its own faces (dlib) does so, from files and from detected boxes."""
    size, _, channels = model.image_shape
    if is_aligning(model):
        return crops_from_photos(files, detect=detect, max_faces=max_faces, detector=detector, crop=crop, align=model)
    return crops_from_photos(files, size=size, grayscale=channels == 1, detect=detect, max_faces=max_faces,
                             detector=detector, crop=resolve_crop(model, crop))


def face_of_photo(model: Encoder, path: str | os.PathLike, *, detect: bool,
                  detector: str = "auto") -> tuple[str | np.ndarray, str | None]:
    """One face per file, for commands that take one (morph, explain): the path as it is, or with
    `detect` the surest face found in the photo as an `(H, W, C)` crop at the model's shape.

    Returns:
        `(the path or the crop, a note when several faces were found and the surest was used)`.

    Raises:
        FacespaceError: no face found in the photo (naming it).
    """
    if not detect:
        return str(path), None
    crops = model_crops(model, [path], detect=True, detector=detector)
    if crops.no_face:
        raise FacespaceError(f"no face found in {path}; use a photo where the face is upright and clearly visible, "
                             "or pass a cropped face without --detect")
    note = None
    if len(crops) > 1:
        x, y, w, h = crops.boxes[0]
        note = f"{path}: {len(crops)} faces found; using the surest, face 0 at x={x} y={y} {w}x{h}"
    return crops.images[0], note

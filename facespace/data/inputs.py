"""Images as a model takes them: the one `as_images` every verb uses.

A verb accepts an `(n, H, W, C)` float32 array at the model's shape (taken as it is), a `FaceSet`,
one path, or a list of paths (URLs too, read through fsspec: `facespace.data.urls`). Files are read
at the model's size and channels and cut with the crop the model was trained with
(`facespace.data.crops.model_crop`). Verbs about people pass
`check_faces=True`: then a missing file, a non-image, one too small for a face or for the crop, and
blank or non-finite images are refused by name.

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> as_images(PixelEncoder(size=4, channels=1), np.zeros((4, 4, 1), np.float32)).shape
    (1, 4, 4, 1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.data.crops import RECORDED, crop_name, resolve_crop
from facespace.data.images import crop_box, load_images, open_image, read_image
from facespace.data.sources import image_files
from facespace.data.urls import is_url
from facespace.errors import DataError
from facespace.protocol import Encoder, check_images, is_aligning

# an image whose pixels vary less than this (std over the image) holds no face
MIN_PIXEL_STD = 1e-3
# source images smaller than this (pixels per side) are too small to hold a usable face
MIN_SOURCE_SIDE = 12
# files read for a model that aligns its own faces are first shrunk to this longer side at most
ALIGN_MAX_SIDE = 2048


def as_images(model: Encoder, images: Any, *, crop: Any = RECORDED, check_faces: bool = False) -> np.ndarray:
    """Return `images` as the model's `(n, H, W, C)` float32, loading paths if given.

    Args:
        model: anything with `image_shape` (and `checkpoint_info` for its recorded crop).
        images: an array, a FaceSet, a path, or a sequence of paths.
        crop: the crop applied to image files (as `load_faces`); "recorded": the one the model was
            trained with ("lfw" for models that recorded none).
        check_faces: refuse unusable faces by name (see the module docstring).

    Returns:
        `(n, H, W, C)` float32.
    """
    shape = tuple(model.image_shape)
    if hasattr(images, "images") and hasattr(images, "paths"):  # a FaceSet
        images = images.images
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, Sequence) and len(images) and isinstance(images[0], (str, os.PathLike)):
        if is_aligning(model):
            x = aligned_images(model, images, crop=crop, check_faces=check_faces)
            return check_face_images(x, names=[str(p) for p in images]) if check_faces else x
        crop = resolve_crop(model, crop)
        if check_faces:
            return load_face_images(images, shape, crop=crop)
        return load_images([str(p) for p in images], size=shape[0], crop=crop, grayscale=shape[2] == 1)
    if check_faces:
        return check_face_images(check_images(images, shape, finite=False))
    return check_images(images, shape)


def check_face_images(images: np.ndarray, *, names: Sequence[str] | None = None) -> np.ndarray:
    """Refuse images with no usable face area: non-finite or blank (uniform) ones.

    Args:
        images: `(n, H, W, C)` float32 in [0, 1].
        names: what to call each image in an error (its path); default "image i".
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[0] == 0:
        raise DataError(f"expected a non-empty batch of images (n, H, W, C); got shape {x.shape}")
    for i, img in enumerate(x):
        what = names[i] if names is not None else f"image {i}"
        if not np.isfinite(img).all():
            raise DataError(f"{what} contains NaN or infinite values; clean or drop it")
        if float(img.std()) < MIN_PIXEL_STD:
            raise DataError(f"{what} is blank (a single colour): no face to use; pass a photo of a face")
    return x


def load_face_images(
    paths: Sequence[str | os.PathLike], image_shape: tuple[int, int, int], *, crop: Any = "lfw"
) -> np.ndarray:
    """Read image files at a model's `(H, W, C)`, refusing unusable ones by name.

    A missing file, a file that is not an image, one smaller than 12 pixels a side, one the crop
    box does not fit, or a blank one raise `DataError` naming the file.

    Args:
        paths: image files.
        image_shape: the model's `(H, W, C)`.
        crop: the data-layer crop spec (`facespace.data.crops.parse_crop`); give the model's own
            (`facespace.data.crops.model_crop`) so files are cut as its training faces were.

    Returns:
        `(n, H, W, C)` float32 in [0, 1].
    """
    from PIL import Image, UnidentifiedImageError

    paths = [p if is_url(p) else Path(p) for p in paths]  # a URL is read through fsspec (`open_image`)
    if not paths:
        raise DataError("no images given; pass one or more image files")
    for p in paths:
        if not is_url(p) and not p.is_file():
            raise DataError(f"{p}: no such image file; check the path")
        try:
            with (open_image(p) if is_url(p) else Image.open(p)) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError):
            raise DataError(f"{p} is not an image file (PNG, JPEG, PGM, ...); pass a photo of a face") from None
        if min(w, h) < MIN_SOURCE_SIDE:
            raise DataError(
                f"{p} is {w}x{h} pixels, too small to hold a usable face (at least "
                f"{MIN_SOURCE_SIDE}x{MIN_SOURCE_SIDE}); pass a larger photo"
            )
        if not (_fits(crop, w, h) or _fits(crop, h, w)):  # either way round: an EXIF rotation may swap the sides
            raise DataError(
                f"{p} is {w}x{h} pixels, too small for the crop {crop_name(crop)} the model uses; pass the "
                "original photo, or --crop none (crop=None) for a face that is already cut out"
            )
    size, _, channels = image_shape
    x = load_images([str(p) for p in paths], size=size, crop=crop, grayscale=channels == 1)
    return check_face_images(x, names=[str(p) for p in paths])


def aligned_images(model: Any, paths: Sequence[str | os.PathLike], *, crop: Any = RECORDED,
                   check_faces: bool = False) -> np.ndarray:
    """Inputs for a model that cuts its own faces from files (`facespace.protocol.Aligning`, dlib).

    Each file is one face: by default the model locates it (`model.locate`; a file in which no face
    is found is taken to be a face already cut out and used whole); `crop="none"` uses the whole
    file as the face box without looking; a box (`"T,L,B,R"`) gives the face box.

    Returns:
        `(n, H, W, C)` float32 in [0, 1] at `model.image_shape`.
    """
    if not len(paths):
        raise DataError("no images given; pass one or more image files")
    return align_arrays(model, (read_image(p, max_side=ALIGN_MAX_SIDE) for p in paths), crop=crop,
                        check_faces=check_faces, names=[str(p) for p in paths])


def align_arrays(model: Any, images: Any, *, crop: Any = RECORDED, check_faces: bool = False,
                 names: Sequence[str] | None = None) -> np.ndarray:
    """`aligned_images` for images already read: an iterable of `(H, W, C)` arrays in [0, 1]."""
    chips = []
    for i, img in enumerate(images):
        p = names[i] if names is not None else f"image {i}"
        h, w = img.shape[:2]
        if check_faces and min(w, h) < MIN_SOURCE_SIDE:
            raise DataError(f"{p} is {w}x{h} pixels, too small to hold a usable face (at least "
                            f"{MIN_SOURCE_SIDE}x{MIN_SOURCE_SIDE}); pass a larger photo")
        if isinstance(crop, str) and crop == RECORDED:
            box = model.locate(img)
        else:
            spec = resolve_crop(model, crop)
            cut = crop_box(spec, w, h, name=p) if spec is not None else None
            box = None if cut is None else (cut[1], cut[0], cut[3] - cut[1], cut[2] - cut[0])
        chips.append(model.align(img, box or (0, 0, w, h)))
    return np.stack(chips).astype(np.float32)


def expand_images(items: Sequence[str | os.PathLike]) -> list[str]:
    """The image files a face-taking command reads (people enroll/identify/quality, groups add): what
    `facespace.data.sources.image_files` finds in local files, folders (sorted, recursive), `.txt` lists
    and URLs of images or folders, with local paths kept as given (not made absolute).

    Raises:
        DataError: a local source that does not exist, a folder that holds no image file, an empty or
            missing list, or URLs without fsspec.
    """
    return image_files([os.fspath(p) for p in items], as_given=True)[0]


def _fits(crop: Any, width: int, height: int) -> bool:
    try:
        crop_box(crop, width, height)
        return True
    except DataError:
        return False

"""Read one image robustly, and turn it into a face array: crop, area-averaging resize, float32.

Every loader (folders, archives, CLI arguments) goes through `decode_face`, so an image gives the
same pixels whichever way it arrived; `open_image` reads a URL through fsspec (`facespace.data.urls`).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facespace.data.boxes import (LFW_BOX, LFW_ONLY, LFW_SIZE, TIGHT_BOX, Crop, check_crop, crop_box,  # noqa: F401
                                   face_frame, lfw_only_box, pad_edges)
from facespace.data.urls import is_url, read_url
from facespace.errors import DataError

# Pillow refuses more than 2x its own limit (~179 megapixels); we check our own, clearer limit first.
MAX_PIXELS = 178_956_970
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# files never opened to see whether they are images (what facespace and everyday folders hold beside them)
NOT_IMAGE_EXTENSIONS = (".txt", ".csv", ".json", ".md", ".html", ".py", ".npy", ".npz", ".parquet", ".safetensors",
                        ".index", ".db", ".lock", ".log", ".pdf", ".zip", ".tgz", ".gz", ".tar", ".xml", ".yaml")

Source = Union[str, os.PathLike, bytes]
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def describe(source: Source, name: str | None = None) -> str:
    """A short name for an image in error messages: its path, or the given name for bytes."""
    if name is not None:
        return name
    if isinstance(source, (bytes, bytearray)):
        return "<image bytes>"
    return str(source)


@contextmanager
def _pillow_limit(max_pixels: int) -> Iterator[None]:
    """Let Pillow open images up to `max_pixels` without its own bomb warning or error."""
    old = Image.MAX_IMAGE_PIXELS
    if max_pixels > MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = None  # our own check below replaces Pillow's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def open_image(source: Source, *, max_pixels: int = MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Open an image lazily (header only) and check its pixel count.

    `source` is a path, the encoded bytes, or a URL (`scheme://...`), whose bytes are read through
    fsspec (`facespace.data.urls`): every loader opens files here, so all of them take URLs.

    Raises:
        DataError: missing file, not an image, more than `max_pixels` pixels, or a URL without fsspec.
    """
    what = describe(source, name)
    if is_url(source):
        source = read_url(source)
    try:
        with _pillow_limit(max_pixels):
            if isinstance(source, (bytes, bytearray)):
                img = Image.open(io.BytesIO(source))
            else:
                img = Image.open(os.fspath(source))
    except FileNotFoundError:
        raise DataError(f"{what}: no such file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{what}: is a folder, not an image file") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"{what}: refused as a possible decompression bomb ({e}); "
                        f"if you trust the file, shrink it first") from None
    except UnidentifiedImageError:
        raise DataError(f"{what}: not an image file Pillow can read (expected jpg, png, pgm, bmp, webp)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{what}: cannot read the image ({e})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise DataError(f"{what}: {w}x{h} = {w * h:,} pixels is more than the limit of {max_pixels:,}; "
                        f"it may be a decompression bomb; if you trust the file, shrink it first")
    if w == 0 or h == 0:
        raise DataError(f"{what}: the image is empty ({w}x{h})")
    return img


def is_grey(img: Image.Image) -> bool:
    """True for single-channel images (grey, black-and-white, 16-bit grey, grey with alpha)."""
    return img.mode in _GREY_MODES


def _to_8bit(img: Image.Image, grey: bool) -> Image.Image:
    """Convert any Pillow mode to 8-bit `L` (grey) or `RGB`; alpha is composited onto white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            top = 65535.0
        elif img.mode == "I":  # 32-bit integer: 16-bit data from older decoders, or plain 8-bit values
            top = 65535.0 if a.max(initial=0) > 255 else 255.0
        else:  # "F": floats in [0, 1] or in [0, 255]
            top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        img = Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    mode = "L" if grey else "RGB"
    return img if img.mode == mode else img.convert(mode)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright; 5 to 8 swap width and height)."""
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not stop the image from loading
        return 1


def resample_filter(src: float, dst: int) -> Image.Resampling:
    # area averaging when shrinking (the course's resize); bilinear when enlarging, where a box filter
    # would only repeat pixels
    return Image.Resampling.BOX if dst <= src else Image.Resampling.BILINEAR


def decode_face(source: Source, size: int, *, crop: Crop = "lfw", grayscale: bool = False,
                max_pixels: int = MAX_PIXELS, name: str | None = None) -> tuple[np.ndarray, bool]:
    """Decode one image into a face array: EXIF orientation, crop, area-averaging resize.

    JPEGs are decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale that still leaves the crop at
    least `size` pixels wide (Pillow's `draft`), which is several times faster on big images.

    Args:
        source: a path or the encoded bytes.
        size: the output side in pixels.
        crop: see `crop_box`.
        grayscale: one channel (ITU-R 601 luma) instead of three.
        max_pixels: refuse larger images (decompression bombs).
        name: how to name the image in errors (default: the path).

    Returns:
        `((size, size, C) uint8, was_grey)` with C = 1 if grayscale else 3; `was_grey` says the file
        itself had one channel (a grey image in a colour set is replicated to 3 channels).

    Raises:
        DataError: the file is missing, not an image, truncated, too large, or the crop does not fit.
    """
    what = describe(source, name)
    img = open_image(source, max_pixels=max_pixels, name=name)
    try:
        grey_file = is_grey(img)
        orientation = _orientation(img)
        width, height = (img.size[1], img.size[0]) if orientation in (5, 6, 7, 8) else img.size
        box = crop_box(crop, width, height, name=what)
        t, l, b, r = box if box is not None else (0, 0, height, width)
        if img.format == "JPEG":
            scale = max(size / (r - l), size / (b - t))  # draft keeps at least this scale
            img.draft("L" if grayscale or grey_file else "RGB",
                      (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
        img.load()
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
        img = _to_8bit(img, grayscale or grey_file)
        sx, sy = img.size[0] / width, img.size[1] / height  # < 1 after a draft
        frame = face_frame(crop, width, height)
        if frame is not None:  # a face crop for a model that sees more than the face: pad it out
            img = pad_edges(img, frame)
            t, l, b, r, sx, sy = 0, 0, img.size[1], img.size[0], 1.0, 1.0
        out = img.resize((size, size), resample_filter(min((r - l) * sx, (b - t) * sy), size),
                         box=(l * sx, t * sy, r * sx, b * sy))
        if not grayscale and out.mode == "L":
            out = out.convert("RGB")
        arr = np.asarray(out, dtype=np.uint8)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(f"{what}: refused as a possible decompression bomb ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"{what}: cannot decode the image, it may be truncated or corrupt ({e})") from None
    finally:
        img.close()
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr, grey_file


def read_image(source: Source, *, max_pixels: int = MAX_PIXELS, max_side: int | None = None,
               name: str | None = None) -> np.ndarray:
    """Read one whole image as floats, honouring its EXIF orientation.

    Args:
        source: a path or the encoded bytes of a jpg, png, pgm, bmp, webp, tiff... file.
        max_pixels: refuse images with more pixels (decompression bombs), with a `DataError`.
        max_side: if given, shrink (area averaging) so the longer side is at most this; JPEGs are
            then decoded at reduced scale, so huge photos stay cheap.
        name: how to name the image in errors (default: the path).

    Returns:
        `(H, W, C)` float32 in [0, 1]; C = 1 for grey files (8- or 16-bit), 3 otherwise
        (palette converted, alpha composited onto white).

    Raises:
        DataError: naming the file, when it is missing, not an image, truncated or too large.

    Example:
        >>> img = read_image("face.jpg")  # doctest: +SKIP
        >>> img.shape, img.dtype  # doctest: +SKIP
        ((250, 250, 3), dtype('float32'))
    """
    what = describe(source, name)
    img = open_image(source, max_pixels=max_pixels, name=name)
    try:
        grey = is_grey(img)
        if max_side is not None and img.format == "JPEG":
            s = min(1.0, max_side / max(img.size))
            img.draft("L" if grey else "RGB", (math.ceil(img.size[0] * s), math.ceil(img.size[1] * s)))
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_8bit(img, grey)
        if max_side is not None and max(img.size) > max_side:
            s = max_side / max(img.size)
            img = img.resize((max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s))),
                             Image.Resampling.BOX)
        arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"{what}: cannot decode the image, it may be truncated or corrupt ({e})") from None
    finally:
        img.close()
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_many(items: Sequence[tuple[int, Source, str | None]], size: int, crop: Crop, grayscale: bool,
                max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Decode a chunk of images; a worker process runs this.

    Args:
        items: `(index, path or bytes, name for errors)` triples.

    Returns:
        `(indices (k,) int64, images (k, size, size, C) uint8, grey (k,) bool, errors)` for the images
        that decoded, and `[(index, message)]` for those that did not.
    """
    channels = 1 if grayscale else 3
    ok, imgs, greys, errors = [], [], [], []
    for index, source, name in items:
        try:
            arr, grey = decode_face(source, size, crop=crop, grayscale=grayscale, max_pixels=max_pixels, name=name)
        except DataError as e:
            errors.append((index, str(e)))
            continue
        ok.append(index)
        imgs.append(arr)
        greys.append(grey)
    images = np.stack(imgs) if imgs else np.zeros((0, size, size, channels), np.uint8)
    return np.asarray(ok, np.int64), images, np.asarray(greys, bool), errors


def load_images(paths: Sequence[Source], *, size: int, crop: Crop = "lfw", grayscale: bool = False,
                max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load a few images given on a command line, with exactly `load_faces`'s preprocessing.

    Args:
        paths: image paths (or encoded bytes).
        size: the output side in pixels.
        crop: see `crop_box` ("lfw" crops 250x250 LFW originals and leaves other sizes whole).
        grayscale: one channel instead of three.

    Returns:
        `(n, size, size, C)` float32 in [0, 1], C = 1 if grayscale else 3.

    Raises:
        DataError: naming the first file that cannot be used; nothing is skipped silently.
    """
    if isinstance(paths, (str, os.PathLike, bytes)):
        paths = [paths]
    check_size(size)
    check_crop(crop)
    out = np.empty((len(paths), size, size, 1 if grayscale else 3), np.float32)
    for i, p in enumerate(paths):
        arr, _ = decode_face(p, size, crop=crop, grayscale=grayscale, max_pixels=max_pixels)
        out[i] = arr
    out /= np.float32(255.0)
    return out


def check_size(size: int) -> None:
    """Raise a DataError unless `size` is a positive integer."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise DataError(f"size must be a positive integer number of pixels, got {size!r}")


def is_image_name(path: str | Path) -> bool:
    """True when the file name has one of the image extensions we load."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def is_image_file(path: str | Path) -> bool:
    """True for a file a folder scan takes as an image: a known image extension, or, for a name
    without one (the Yale set's `subject01.happy`), content Pillow recognises as an image."""
    if is_image_name(path):
        return True
    if str(path).lower().endswith(NOT_IMAGE_EXTENSIONS):
        return False
    try:
        with Image.open(path) as img:  # reads the header only
            return bool(img.format)
    except Exception:  # not an image, unreadable, or a format Pillow does not know
        return False

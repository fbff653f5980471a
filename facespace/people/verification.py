"""Face verification: "are these two faces the same person?"

Any `facespace.protocol.Encoder` maps each face to a code; two faces are the same person when the
distance between their codes is at most a threshold. The threshold is calibrated on labelled pairs
(`calibrate_threshold`) and stored with the model in its checkpoint's `extra["verify"]`, so
`verify` and `facespace verify` use it from then on.

Example:
    >>> d = np.array([0.1, 0.2, 0.6, 0.7]); same = np.array([True, True, False, False])
    >>> float(calibrate_threshold(d, same))
    0.4
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.errors import DataError, FacespaceError

METRICS = ("cosine", "l2")
# an image whose pixels vary less than this (std over the image) holds no face
MIN_PIXEL_STD = 1e-3
# source images smaller than this (pixels per side) are too small to hold a usable face
MIN_SOURCE_SIDE = 12


@dataclass(frozen=True)
class PixelConfig:
    size: int = 32  # image side in pixels
    channels: int = 3  # 1 (grey) or 3 (RGB)


class PixelEncoder:
    """The raw-pixel baseline as an `Encoder`: the code is the flattened image.

    Args:
        size: image side `H = W` in pixels.
        channels: 1 (grey) or 3 (RGB).

    Example:
        >>> PixelEncoder(size=4, channels=1).encode(np.zeros((2, 4, 4, 1), np.float32)).shape
        (2, 16)
    """

    kind = "pixels"

    def __init__(self, *, size: int = 32, channels: int = 3):
        self.config = PixelConfig(size=size, channels=channels)
        self.checkpoint_info: dict[str, Any] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.size, self.config.size, self.config.channels)

    @property
    def code_size(self) -> int:
        return self.config.size * self.config.size * self.config.channels

    def encode(self, images: np.ndarray) -> np.ndarray:
        """`(n, H, W, C)` float32 -> `(n, H*W*C)` float32."""
        x = check_shape(images, self.image_shape)
        return x.reshape(len(x), -1).copy()


def pair_distances(codes_a: np.ndarray, codes_b: np.ndarray, *, metric: str = "cosine") -> np.ndarray:
    """Distance between row i of `codes_a` and row i of `codes_b`.

    Args:
        codes_a, codes_b: `(n, d)` float32.
        metric: "cosine" (1 - cosine similarity, in [0, 2]) or "l2" (Euclidean).

    Returns:
        `(n,)` float64 distances.
    """
    a = np.asarray(codes_a, np.float64)
    b = np.asarray(codes_b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise FacespaceError(f"codes must be two (n, d) arrays of one shape; got {a.shape} and {b.shape}")
    if metric == "cosine":
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        return 1.0 - (a * b).sum(1) / np.maximum(na * nb, 1e-12)
    if metric == "l2":
        return np.linalg.norm(a - b, axis=1)
    raise FacespaceError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")


def cross_distances(queries: np.ndarray, codes: np.ndarray, *, metric: str = "cosine") -> np.ndarray:
    """All distances between `(q, d)` queries and `(n, d)` codes -> `(q, n)` float64."""
    q = np.asarray(queries, np.float64)
    c = np.asarray(codes, np.float64)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return 1.0 - q @ c.T
    if metric == "l2":
        d2 = (q * q).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2.0 * q @ c.T
        return np.sqrt(np.maximum(d2, 0.0))
    raise FacespaceError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")


def calibrate_threshold(distances: Any, same: Any, *, target_far: float | None = None) -> float:
    """Choose the distance threshold at or under which two faces count as the same person.

    Args:
        distances: `(n,)` distances of labelled pairs.
        same: `(n,)` bool, True for pairs of one person.
        target_far: None for the threshold of highest accuracy on these pairs; else the largest
            threshold whose false-accept rate (different-person pairs accepted) is at most this.

    Returns:
        The threshold (a pair is "same" when `distance <= threshold`). The accuracy-optimal
        threshold lies midway between two neighbouring distances.
    """
    d = np.asarray(distances, np.float64).ravel()
    s = np.asarray(same).astype(bool).ravel()
    if d.shape != s.shape:
        raise FacespaceError(f"distances and same differ in length ({len(d)} vs {len(s)})")
    if not np.isfinite(d).all():
        raise FacespaceError("distances contain NaN or infinite values")
    if target_far is not None:
        if not 0.0 <= target_far < 1.0:
            raise FacespaceError(f"target_far must be in [0, 1); got {target_far}")
        impostor = np.sort(d[~s])
        if len(impostor) == 0:
            raise FacespaceError("no different-person pairs to calibrate a false-accept rate; add some")
        k = int(np.floor(target_far * len(impostor) + 1e-9))  # false accepts allowed
        if k >= len(impostor):
            return float(impostor[-1])
        return float(np.nextafter(impostor[k], -np.inf))
    if s.all() or not s.any():
        raise FacespaceError("calibration needs both same-person and different-person pairs")
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    # accepting the first i sorted pairs: correct = genuine among them + impostors after them
    correct = np.concatenate([[0], np.cumsum(ss)]) + np.concatenate([[(~ss).sum()], (~ss).sum() - np.cumsum(~ss)])
    cut = np.concatenate([[True], ds[1:] != ds[:-1], [True]])  # only cut between distinct values
    correct = np.where(cut, correct, -1)
    best = np.flatnonzero(correct == correct.max())
    i = int(best[len(best) // 2])  # middle of the best plateau
    if i == 0:
        return float(ds[0] - max(1e-6, abs(ds[0]) * 1e-6))
    if i == len(ds):
        return float(ds[-1])
    return float((ds[i - 1] + ds[i]) / 2.0)


def pair_accuracy(distances: Any, same: Any, threshold: float) -> float:
    """Fraction of pairs classified right by `distance <= threshold`."""
    d = np.asarray(distances, np.float64)
    return float(((d <= threshold) == np.asarray(same).astype(bool)).mean())


# --- images in --------------------------------------------------------------------------------


def check_shape(images: Any, image_shape: tuple[int, int, int]) -> np.ndarray:
    """`images` as `(n, H, W, C)` float32 of the model's shape (one `(H, W, C)` image is a batch of one)."""
    x = np.asarray(images, dtype=np.float32)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise FacespaceError(
            f"images have shape {x.shape} but the model takes (n, {', '.join(map(str, image_shape))}); load them "
            f"with size={image_shape[0]} and grayscale={image_shape[2] == 1}, or pass image paths"
        )
    return x


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

    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no images given; pass one or more image files")
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: no such image file; check the path")
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError):
            raise DataError(f"{p} is not an image file (PNG, JPEG, PGM, ...); pass a photo of a face") from None
        if min(w, h) < MIN_SOURCE_SIDE:
            raise DataError(
                f"{p} is {w}x{h} pixels, too small to hold a usable face (at least "
                f"{MIN_SOURCE_SIDE}x{MIN_SOURCE_SIDE}); pass a larger photo"
            )
        if not (_fits(crop, w, h) or _fits(crop, h, w)):  # either way round: an EXIF rotation may swap the sides
            from facespace.data.crops import crop_name

            raise DataError(
                f"{p} is {w}x{h} pixels, too small for the crop {crop_name(crop)} the model uses; pass the "
                "original photo, or --crop none (crop=None) for a face that is already cut out"
            )
    from facespace.data import load_images

    size, _, channels = image_shape
    x = load_images([str(p) for p in paths], size=size, crop=crop, grayscale=channels == 1)
    return check_face_images(x, names=[str(p) for p in paths])


def _fits(crop: Any, width: int, height: int) -> bool:
    from facespace.data.images import crop_box

    try:
        crop_box(crop, width, height)
        return True
    except DataError:
        return False


def as_images(model: Any, images: Any, *, crop: Any = "recorded") -> np.ndarray:
    """An image array, one image, a path or a list of paths -> `(n, H, W, C)` at the model's shape.

    Files are cut with `crop`; the default, "recorded", is the crop the model was trained with
    (`facespace.data.crops.model_crop`). Arrays are taken as they are.
    """
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], (str, os.PathLike)):
        from facespace.data.crops import resolve_crop

        return load_face_images(images, tuple(model.image_shape), crop=resolve_crop(model, crop))
    return check_face_images(check_shape(images, tuple(model.image_shape)))


# --- the threshold stored with a model --------------------------------------------------------


def stored_threshold(model: Any) -> dict[str, Any] | None:
    """The calibration stored with a loaded model (`{"threshold", "metric", ...}`), or None."""
    return (getattr(model, "checkpoint_info", None) or {}).get("extra", {}).get("verify")


def save_threshold(
    model: Any, threshold: float, *, metric: str = "cosine", target_far: float | None = None, **info: Any
) -> Path:
    """Store a calibrated threshold in the checkpoint the model was loaded from (atomic rewrite).

    Args:
        model: a model loaded with `load_model` (it knows its file).
        threshold: the distance threshold.
        metric: the distance it applies to.
        target_far: the false-accept rate it was chosen for (None: best accuracy).
        **info: more facts to keep (pairs file, number of pairs, accuracy).

    Returns:
        The checkpoint path.
    """
    from facespace.checkpoint import read_checkpoint, save_model

    path = (getattr(model, "checkpoint_info", None) or {}).get("path")
    if not path:
        raise FacespaceError("this model was never saved; save it with save_model before storing a threshold")
    meta, _ = read_checkpoint(path)
    extra = dict(meta.get("extra") or {})
    extra["verify"] = {"threshold": float(threshold), "metric": metric, "target_far": target_far, **info}
    save_model(model, path, step=meta.get("step", 0), best_val_loss=meta.get("best_val_loss"), extra=extra)
    model.checkpoint_info = {**model.checkpoint_info, "extra": extra}
    from facespace.checkpoint import file_hash

    model.checkpoint_info["hash"] = file_hash(path)
    return Path(path)


def calibrate(
    model: Any,
    images_a: Any,
    images_b: Any,
    same: Any,
    *,
    target_far: float | None = None,
    metric: str = "cosine",
    save: bool = False,
) -> float:
    """Calibrate a model's verification threshold on labelled pairs of images.

    Args:
        model: any `Encoder`.
        images_a, images_b: `(n, H, W, C)` float32 arrays or lists of n image paths.
        same: `(n,)` bool.
        target_far: see `calibrate_threshold`.
        metric: "cosine" or "l2".
        save: also store it in the model's checkpoint (`save_threshold`).

    Returns:
        The threshold.
    """
    za = model.encode(as_images(model, images_a))
    zb = model.encode(as_images(model, images_b))
    d = pair_distances(za, zb, metric=metric)
    t = calibrate_threshold(d, same, target_far=target_far)
    if save:
        save_threshold(model, t, metric=metric, target_far=target_far, pairs=len(d), accuracy=pair_accuracy(d, same, t))
    return t


def verify(
    model: Any,
    image_a: Any,
    image_b: Any,
    *,
    threshold: float | None = None,
    metric: str | None = None,
    crop: Any = "recorded",
) -> tuple[float, bool]:
    """Are two faces the same person?

    Args:
        model: any `Encoder`; its stored threshold (`save_threshold`) is used unless `threshold`
            is given.
        image_a, image_b: an `(H, W, C)` float32 image in [0, 1] at the model's shape, or a path.
        threshold: the largest distance still counted as the same person.
        metric: "cosine" (default) or "l2"; default: the metric the stored threshold was made for.
        crop: how image files are cut (`facespace.data.crops.parse_crop`); default: the crop the model
            was trained with.

    Returns:
        `(distance, same)`.

    Example:
        >>> enc = PixelEncoder(size=4, channels=1)
        >>> a = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4, 1)
        >>> verify(enc, a, a, threshold=0.1)
        (0.0, True)
    """
    stored = stored_threshold(model)
    if threshold is None:
        if stored is None:
            raise FacespaceError(
                "this model has no calibrated verification threshold; calibrate one with "
                "`facespace evaluate-lfw MODEL --pairs pairsDevTrain.txt --save-threshold` "
                "or pass threshold="
            )
        threshold = float(stored["threshold"])
        metric = metric or stored.get("metric", "cosine")
    metric = metric or "cosine"
    a = as_images(model, image_a, crop=crop)
    b = as_images(model, image_b, crop=crop)
    if len(a) != 1 or len(b) != 1:
        raise FacespaceError(f"verify compares one image with one image; got {len(a)} and {len(b)}")
    z = model.encode(np.concatenate([a, b]))
    d = float(pair_distances(z[:1], z[1:], metric=metric)[0])
    d = 0.0 if abs(d) < 1e-7 else d
    return d, bool(d <= threshold)

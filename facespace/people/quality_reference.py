"""The quality reference: the raw measures of a face crop and their distribution over faces known
to be good, against which `facespace.people.quality.face_quality` judges new faces.

`measure_faces` takes the measures (sharpness, contrast, brightness, recon_error, code_distance;
defined in `facespace.people.quality`); `quality_reference` measures known-good faces (normally the
model's held-out validation faces) into a `QualityReference`, kept as quantiles plus a normal fitted
to each measure for tails the faces are too few to show; `save_quality_reference` stores it in the
model's checkpoint (`extra["quality"]`) and `reference_for` finds the one to judge with (the stored
one, else an image-only one measured on scikit-image's embedded LFW faces).

Example:
    >>> from skimage.data import lfw_subset
    >>> ref = quality_reference(lfw_subset()[:40, :, :, None].astype(np.float32))
    >>> ref.count, ref.value("sharpness", 0.01) < ref.value("sharpness", 0.5)
    (40, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.errors import FacespaceError
from facespace.protocol import Encoder

__all__ = ["MEASURES", "MIN_TAIL", "QUANTILES", "QualityReference", "checked_images", "embedded_faces",
           "laplacian_variance", "measure_faces", "quality_reference", "reference_for", "save_quality_reference"]

# quantiles of each measure kept in a reference (thresholds are read off these)
QUANTILES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995)
MEASURES = ("sharpness", "contrast", "brightness", "recon_error", "code_distance")
# floor of the relative reconstruction error's denominator: pixel std 0.01 (a nearly flat image)
_FLOOR_VAR = 1e-4
# an empirical quantile is trusted when this many reference faces lie beyond it (else a fitted one)
MIN_TAIL = 5
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class QualityReference:
    """Quantiles (`QUANTILES`) of each measure over known-good faces, plus their codes' mean/std.

    Attributes:
        image_shape: `(H, W, C)` the measures were taken at.
        count: how many faces.
        quantiles: `{measure: [value at each of QUANTILES]}` (recon_error / code_distance only
            when the model could measure them).
        code_mean, code_std: `(d,)` lists, or None without a model.
        source: where the faces came from, for messages.
        native_sharpness: the faces were at their source resolution, and so a face judged against
            this reference has its sharpness measured at its own source resolution where known
            (`face_quality`'s `sizes`): a sharp 92-px portrait enlarged to a 160-px input is as sharp
            as its pixels allow, not blurred.
    """

    image_shape: tuple[int, int, int]
    count: int
    quantiles: dict[str, list[float]]
    code_mean: list[float] | None = None
    code_std: list[float] | None = None
    source: str = "given faces"
    quantile_levels: tuple[float, ...] = field(default=QUANTILES)
    fits: dict[str, list[float]] = field(default_factory=dict)
    native_sharpness: bool = False

    def value(self, measure: str, q: float) -> float:
        """The measure's reference value at quantile `q`.

        Read off the stored empirical quantiles when at least `MIN_TAIL` reference faces lie beyond
        `q` (a tail seen often enough to trust); otherwise from a normal fitted to the measure
        (to its logarithm for the positive ones), which extrapolates a small reference's tails
        instead of stopping at its extremes.
        """
        if self.count * min(q, 1.0 - q) >= MIN_TAIL or measure not in self.fits:
            return float(np.interp(q, self.quantile_levels, self.quantiles[measure]))
        from statistics import NormalDist

        mean, std = self.fits[measure]
        v = NormalDist(mean, max(std, 1e-12)).inv_cdf(q)
        return float(v if measure == "brightness" else np.exp(v))

    def to_dict(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "count": self.count, "quantiles": self.quantiles,
                "code_mean": self.code_mean, "code_std": self.code_std, "source": self.source,
                "quantile_levels": list(self.quantile_levels), "fits": self.fits,
                "native_sharpness": self.native_sharpness}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QualityReference":
        try:
            return cls(tuple(int(v) for v in d["image_shape"]), int(d["count"]),
                       {k: [float(v) for v in vs] for k, vs in d["quantiles"].items()},
                       d.get("code_mean"), d.get("code_std"), str(d.get("source", "stored reference")),
                       tuple(float(v) for v in d.get("quantile_levels", QUANTILES)),
                       {k: [float(v) for v in vs] for k, vs in (d.get("fits") or {}).items()},
                       bool(d.get("native_sharpness", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise FacespaceError(f"the stored quality reference is damaged ({e}); store a new one with "
                                 "`facespace people quality FACES... --model M --save-reference`") from None


# --- measuring -----------------------------------------------------------------------------------


def _grey(x: np.ndarray) -> np.ndarray:
    """`(n, H, W, C)` -> `(n, H, W)` luma."""
    return x[..., 0] if x.shape[-1] == 1 else x[..., :3] @ _LUMA


def at_source_resolution(grey: np.ndarray, sides: Sequence[int | None] | None) -> list[np.ndarray]:
    """Each `(H, W)` image of `(n, H, W)` `grey` shrunk back to its source side where that is
    smaller (area averaging); images of unknown or larger source stay as they are."""
    from PIL import Image

    out = []
    for i, g in enumerate(grey):
        side = None if sides is None else sides[i]
        if side is None or not np.isfinite(side) or int(side) >= min(g.shape) or int(side) < 3:
            out.append(g)
            continue
        f = int(side) / min(g.shape)  # the face side is the crop's shorter side
        h, w = max(3, int(round(g.shape[0] * f))), max(3, int(round(g.shape[1] * f)))
        out.append(np.asarray(Image.fromarray(g.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BOX)))
    return out


def laplacian_variance(grey: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian over interior pixels, 0..255 scale: `(n, H, W)` -> `(n,)`."""
    g = grey.astype(np.float32) * np.float32(255.0)
    if g.shape[1] < 3 or g.shape[2] < 3:
        raise FacespaceError(f"images of {g.shape[1]}x{g.shape[2]} pixels are too small to judge; use 3x3 or more")
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4.0 * g[:, 1:-1, 1:-1]
    return lap.reshape(len(g), -1).var(axis=1, dtype=np.float64)


def measure_faces(images: Any, *, model: Encoder | None = None, codes: np.ndarray | None = None,
                  code_stats: tuple[np.ndarray, np.ndarray] | None = None,
                  batch_size: int = 512, sharpness_sides: Sequence[int | None] | None = None) -> dict[str, np.ndarray]:
    """The raw measures of each image (no thresholds).

    Args:
        images: `(n, H, W, C)` float32 in [0, 1] (the model's input shape when a model is given).
        model: an `Encoder`; recon_error needs a decoder as well.
        codes: `(n, d)` codes of `images` already computed (saves encoding again).
        code_stats: `(mean (d,), std (d,))` of reference codes, for code_distance.
        sharpness_sides: per image, the source side (pixels) to measure sharpness at when smaller
            than the image (`at_source_resolution`); None: every image at its own size.

    Returns:
        `{measure: (n,) float64}` for sharpness, contrast, brightness, and, with a model,
        recon_error (decoder only) and code_distance (with `code_stats`).
    """
    x = checked_images(images, model)
    g = _grey(x)
    if sharpness_sides is None:
        sharp = laplacian_variance(g)
    else:
        sharp = np.array([laplacian_variance(im[None])[0] for im in at_source_resolution(g, sharpness_sides)])
    out = {"sharpness": sharp, "contrast": g.reshape(len(g), -1).std(1, dtype=np.float64),
           "brightness": g.reshape(len(g), -1).mean(1, dtype=np.float64)}
    if model is None:
        return out
    from facespace.protocol import has_decoder

    z = np.asarray(codes, np.float32) if codes is not None else None
    if z is None:
        z = np.concatenate([np.asarray(model.encode(x[i:i + batch_size]), np.float32)
                            for i in range(0, len(x), batch_size)]) if len(x) else np.zeros((0, model.code_size), np.float32)
    if z.shape != (len(x), model.code_size):
        raise FacespaceError(f"codes have shape {z.shape}; expected ({len(x)}, {model.code_size}), one per image")
    if has_decoder(model):
        err = np.empty(len(x))
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].reshape(min(batch_size, len(x) - i), -1).astype(np.float64)
            r = np.clip(np.asarray(model.decode(z[i:i + batch_size]), np.float64), 0.0, 1.0).reshape(len(xb), -1)
            centred = xb - xb.mean(1, keepdims=True)
            err[i:i + len(xb)] = ((xb - r) ** 2).sum(1) / ((centred ** 2).sum(1) + _FLOOR_VAR * xb.shape[1])
        out["recon_error"] = err
    if code_stats is not None:
        mean, std = (np.asarray(v, np.float64) for v in code_stats)
        std = np.maximum(std, 1e-6 * max(float(std.max(initial=0.0)), 1e-12))
        out["code_distance"] = (((z - mean) / std) ** 2).mean(1)
    return out


def checked_images(images: Any, model: Encoder) -> np.ndarray:
    """`images` as `(n, H, W, C)` float32, refused (with what to do) when they cannot be judged."""
    x = np.asarray(images, np.float32)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise FacespaceError(f"images must be (n, H, W, C) with C = 1 or 3; got shape {x.shape}")
    if model is not None and tuple(x.shape[1:]) != tuple(model.image_shape):
        raise FacespaceError(f"images have shape {x.shape[1:]} but the model takes {tuple(model.image_shape)}; "
                             f"load them with size={model.image_shape[0]} and grayscale={model.image_shape[2] == 1}")
    if not np.isfinite(x).all():
        raise FacespaceError("images contain NaN or infinite values; clean or drop them")
    return x


# --- references ----------------------------------------------------------------------------------


def quality_reference(faces: Any, *, model: Encoder | None = None, source: str = "given faces",
                      native: bool = False, sizes: Sequence[int | None] | None = None) -> QualityReference:
    """Measure known-good faces as a quality reference.

    Use faces the model was NOT fitted on (its validation split): a model reconstructs its own
    training faces better than new ones, so a reference of training faces makes the face-likeness
    thresholds too strict (measured on lfw_subset with PCA-16 fitted on 40 faces: 24 of 40 new faces
    passed against a training-face reference, 26 of 30 against a held-out one).

    Args:
        faces: `(n, H, W, C)` float32 in [0, 1], n >= 20 (the model's input shape with a model).
        model: the model whose recon_error and code_distance are to be judged.
        source: a short description for messages ("training faces of run X").
        native: the faces are at their source resolution (e.g. crops of photos at least as large
            as the model's input): faces judged against it are then measured for sharpness at their
            own source resolution (`QualityReference.native_sharpness`).
        sizes: with `native`, each face's side in source pixels where smaller than its image (a
            tight crop enlarged to the model's input), to measure its sharpness at.
    """
    x = checked_images(faces, model)
    if len(x) < 20:
        raise FacespaceError(f"a quality reference needs at least 20 good faces; got {len(x)}")
    z = stats = None
    if model is not None:
        z = np.concatenate([np.asarray(model.encode(x[i:i + 512]), np.float32) for i in range(0, len(x), 512)])
        stats = (z.mean(0, dtype=np.float64), z.std(0, dtype=np.float64))
    m = measure_faces(x, model=model, codes=z, code_stats=stats, sharpness_sides=sizes if native else None)
    q = {k: np.quantile(v, QUANTILES).tolist() for k, v in m.items()}
    fits = {k: [float(t.mean()), float(t.std(ddof=1))] for k, v in m.items()
            for t in [v if k == "brightness" else np.log(np.maximum(v, 1e-12))]}
    return QualityReference(tuple(int(v) for v in x.shape[1:]), len(x), q,
                            None if stats is None else stats[0].tolist(),
                            None if stats is None else stats[1].tolist(), source, fits=fits, native_sharpness=native)


def save_quality_reference(model: Encoder, reference: QualityReference) -> Path:
    """Store `reference` in the checkpoint `model` was loaded from (`extra["quality"]`, atomic)."""
    from facespace.checkpoint import file_hash, read_checkpoint
    from facespace.models.registry import save_model

    path = (getattr(model, "checkpoint_info", None) or {}).get("path")
    if not path:
        raise FacespaceError("this model was never saved; save it with save_model before storing a quality reference")
    if tuple(reference.image_shape) != tuple(model.image_shape) or reference.code_mean is None:
        raise FacespaceError("the reference was measured without this model or at another image shape; "
                             "make it with quality_reference(faces, model=model)")
    meta, _ = read_checkpoint(path)
    extra = {**(meta.get("extra") or {}), "quality": reference.to_dict()}
    save_model(model, path, step=meta.get("step", 0), best_val_loss=meta.get("best_val_loss"), extra=extra)
    model.checkpoint_info = {**model.checkpoint_info, "extra": extra, "hash": file_hash(path)}
    return Path(path)


_SHAPE_CACHE: dict[tuple[int, int, int], QualityReference] = {}


def embedded_faces(image_shape: tuple[int, int, int]) -> np.ndarray:
    """scikit-image's 100 embedded LFW faces at `(H, W, C)`: `(100, H, W, C)` float32."""
    import cv2
    from skimage.data import lfw_subset

    h, w, c = image_shape
    faces = lfw_subset()[:100].astype(np.float32)  # (100, 25, 25) in [0, 1]
    interp = cv2.INTER_AREA if h <= 25 else cv2.INTER_LINEAR
    x = np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in faces])[..., None]
    return np.ascontiguousarray(np.repeat(x, c, axis=3) if c == 3 else x, np.float32)


def reference_for(model: Encoder | None = None, image_shape: tuple[int, int, int] | None = None) -> QualityReference:
    """The model's stored reference, else an image-only one measured on the embedded faces (cached).

    Args:
        model: an `Encoder`, or None to judge images without one.
        image_shape: `(H, W, C)` of the images when there is no model.
    """
    if model is None:
        shape = tuple(int(v) for v in image_shape)
        if shape not in _SHAPE_CACHE:
            _SHAPE_CACHE[shape] = quality_reference(embedded_faces(shape), source="embedded lfw_subset faces")
        return _SHAPE_CACHE[shape]
    stored = (getattr(model, "checkpoint_info", None) or {}).get("extra", {}).get("quality")
    if stored:
        ref = QualityReference.from_dict(stored)
        if tuple(ref.image_shape) != tuple(model.image_shape):
            raise FacespaceError(f"the model's stored quality reference is for images {ref.image_shape}, not "
                                 f"{tuple(model.image_shape)}; store a new one with --save-reference")
        return ref
    # no stored reference: the image checks only. The embedded faces are grey and framed unlike most
    # models' crops, so as a reference for codes they made 86% of held-out LFW faces "not face-like"
    # under an RGB PCA fitted on LFW (measured); recon_error and code_distance are not judged then.
    return reference_for(None, tuple(model.image_shape))

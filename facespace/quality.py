"""Face quality: is this crop worth enrolling or matching? Sharpness, contrast, brightness, size,
and how face-like it is under the model.

Each measure is compared with its distribution over a *reference*: faces known to be good,
normally the model's own validation faces (`quality_reference`, stored in the checkpoint's
`extra["quality"]` by `save_quality_reference`). A check fails when a face is worse than
`1 - quantile` of the reference faces (default: worse than 99% of them):

- sharpness: variance of the 4-neighbour Laplacian of the grey image (0..255 scale) at the
  resolution given (the model's input); blur removes the fine detail it measures.
- contrast: standard deviation of the grey image; brightness: its mean (too dark or too bright,
  `quantile / 2` on each side).
- recon_error (models with a decoder): the fraction of the image's own variation the autoencoder
  cannot reproduce, `|x - decode(encode(x))|^2 / |x - mean(x)|^2` (Moghaddam and Pentland's
  "distance from face space", made contrast-free so a dim face is not favoured).
- code_distance (any model): the mean squared z-score of the code under the reference codes'
  per-dimension mean and std ("distance in face space": a crop whose code no face has).
- size (when `sizes` is given: the face's side in source pixels): at least the model's input
  side, so the model never sees a face enlarged beyond the pixels it came with.

Each check also gives a component score `1 / (1 + 9^-u)` where `u` is 0 at the threshold and 1
at the reference median (log scale), so 0.5 at the threshold and 0.9 at a typical face. The face's
`score` is the smallest component: `ok` (no reasons) exactly when `score >= 0.5`.

Without a stored reference, the image checks (sharpness, contrast, brightness) use one measured
at first use on scikit-image's embedded LFW faces (`lfw_subset`'s 100 faces at the model's input
size; the reasons say so), and recon_error / code_distance are reported but not judged: those
need the model's own kind of crops. Store a reference from held-out faces of the training data
(`facespace people quality FACES... --model M --save-reference`) to judge face-likeness too.

Example:
    >>> from skimage.data import lfw_subset
    >>> x = lfw_subset()[:, :, :, None].astype(np.float32)
    >>> q = face_quality(np.concatenate([x[:2], np.full((1, 25, 25, 1), 0.5, np.float32)]))
    >>> [r.ok for r in q]
    [True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.errors import FacespaceError

__all__ = ["FaceQuality", "LowQualityError", "QualityReference", "face_quality", "measure_faces",
           "quality_reference", "reference_for", "save_quality_reference"]

# quantiles of each measure kept in a reference (thresholds are read off these)
QUANTILES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995)
MEASURES = ("sharpness", "contrast", "brightness", "recon_error", "code_distance")
# floor of the relative reconstruction error's denominator: pixel std 0.01 (a nearly flat image)
_FLOOR_VAR = 1e-4
# an empirical quantile is trusted when this many reference faces lie beyond it (else a fitted one)
MIN_TAIL = 5
_LN9 = float(np.log(9.0))
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class LowQualityError(FacespaceError):
    """Images refused for their quality (blurry, flat, not face-like, too small...); the message
    names each image and why. Pass `force=True` (`--force`) to use them anyway."""


@dataclass(frozen=True)
class FaceQuality:
    """The quality of one face crop.

    Attributes:
        score: in [0, 1], higher is better; >= 0.5 exactly when every check passes, about 0.9 for a
            face as good as the reference's median in its weakest respect.
        recon_error: relative reconstruction error under the model (None without a decoder).
        sharpness: Laplacian variance of the grey image, 0..255 scale, at the given resolution.
        size: the face's side in source pixels, when known.
        brightness: mean grey level in [0, 1].
        ok: True when no check failed.
        reasons: one human sentence per failed check, e.g. "blurry: Laplacian variance 31 < 120
            (1st percentile of the reference faces)".
        contrast: std of the grey level.
        code_distance: mean squared z-score of the code against the reference codes (None without
            a model).
    """

    score: float
    recon_error: float | None
    sharpness: float
    size: int | None
    brightness: float
    ok: bool
    reasons: tuple[str, ...]
    contrast: float = 0.0
    code_distance: float | None = None


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
    """

    image_shape: tuple[int, int, int]
    count: int
    quantiles: dict[str, list[float]]
    code_mean: list[float] | None = None
    code_std: list[float] | None = None
    source: str = "given faces"
    quantile_levels: tuple[float, ...] = field(default=QUANTILES)
    fits: dict[str, list[float]] = field(default_factory=dict)

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
                "quantile_levels": list(self.quantile_levels), "fits": self.fits}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QualityReference":
        try:
            return cls(tuple(int(v) for v in d["image_shape"]), int(d["count"]),
                       {k: [float(v) for v in vs] for k, vs in d["quantiles"].items()},
                       d.get("code_mean"), d.get("code_std"), str(d.get("source", "stored reference")),
                       tuple(float(v) for v in d.get("quantile_levels", QUANTILES)),
                       {k: [float(v) for v in vs] for k, vs in (d.get("fits") or {}).items()})
        except (KeyError, TypeError, ValueError) as e:
            raise FacespaceError(f"the stored quality reference is damaged ({e}); store a new one with "
                                 "`facespace people quality FACES... --model M --save-reference`") from None


# --- measuring -----------------------------------------------------------------------------------


def _grey(x: np.ndarray) -> np.ndarray:
    """`(n, H, W, C)` -> `(n, H, W)` luma."""
    return x[..., 0] if x.shape[-1] == 1 else x[..., :3] @ _LUMA


def laplacian_variance(grey: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian over interior pixels, 0..255 scale: `(n, H, W)` -> `(n,)`."""
    g = grey.astype(np.float32) * np.float32(255.0)
    if g.shape[1] < 3 or g.shape[2] < 3:
        raise FacespaceError(f"images of {g.shape[1]}x{g.shape[2]} pixels are too small to judge; use 3x3 or more")
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4.0 * g[:, 1:-1, 1:-1]
    return lap.reshape(len(g), -1).var(axis=1, dtype=np.float64)


def measure_faces(images: Any, *, model: Any = None, codes: np.ndarray | None = None,
                  code_stats: tuple[np.ndarray, np.ndarray] | None = None,
                  batch_size: int = 512) -> dict[str, np.ndarray]:
    """The raw measures of each image (no thresholds).

    Args:
        images: `(n, H, W, C)` float32 in [0, 1] (the model's input shape when a model is given).
        model: an `Encoder`; recon_error needs a decoder as well.
        codes: `(n, d)` codes of `images` already computed (saves encoding again).
        code_stats: `(mean (d,), std (d,))` of reference codes, for code_distance.

    Returns:
        `{measure: (n,) float64}` for sharpness, contrast, brightness, and, with a model,
        recon_error (decoder only) and code_distance (with `code_stats`).
    """
    x = _check(images, model)
    g = _grey(x)
    out = {"sharpness": laplacian_variance(g), "contrast": g.reshape(len(g), -1).std(1, dtype=np.float64),
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


def _check(images: Any, model: Any) -> np.ndarray:
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


def quality_reference(faces: Any, *, model: Any = None, source: str = "given faces") -> QualityReference:
    """Measure known-good faces as a quality reference.

    Use faces the model was NOT fitted on (its validation split): a model reconstructs its own
    training faces better than new ones, so a reference of training faces makes the face-likeness
    thresholds too strict (measured on lfw_subset with PCA-16 fitted on 40 faces: 24 of 40 new faces
    passed against a training-face reference, 26 of 30 against a held-out one).

    Args:
        faces: `(n, H, W, C)` float32 in [0, 1], n >= 20 (the model's input shape with a model).
        model: the model whose recon_error and code_distance are to be judged.
        source: a short description for messages ("training faces of run X").
    """
    x = _check(faces, model)
    if len(x) < 20:
        raise FacespaceError(f"a quality reference needs at least 20 good faces; got {len(x)}")
    z = stats = None
    if model is not None:
        z = np.concatenate([np.asarray(model.encode(x[i:i + 512]), np.float32) for i in range(0, len(x), 512)])
        stats = (z.mean(0, dtype=np.float64), z.std(0, dtype=np.float64))
    m = measure_faces(x, model=model, codes=z, code_stats=stats)
    q = {k: np.quantile(v, QUANTILES).tolist() for k, v in m.items()}
    fits = {k: [float(t.mean()), float(t.std(ddof=1))] for k, v in m.items()
            for t in [v if k == "brightness" else np.log(np.maximum(v, 1e-12))]}
    return QualityReference(tuple(int(v) for v in x.shape[1:]), len(x), q,
                            None if stats is None else stats[0].tolist(),
                            None if stats is None else stats[1].tolist(), source, fits=fits)


def save_quality_reference(model: Any, reference: QualityReference) -> Path:
    """Store `reference` in the checkpoint `model` was loaded from (`extra["quality"]`, atomic)."""
    from facespace.checkpoint import file_hash, read_checkpoint, save_model

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


def reference_for(model: Any = None, image_shape: tuple[int, int, int] | None = None) -> QualityReference:
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


# --- judging -------------------------------------------------------------------------------------


def _ordinal(q: float) -> str:
    p = q * 100
    text = f"{p:g}"
    suffix = "th" if 10 <= p % 100 < 20 or not float(p).is_integer() else {1: "st", 2: "nd", 3: "rd"}.get(int(p) % 10, "th")
    return text + suffix


def _num(v: float) -> str:
    """A number as a person reads it: 1940, 3.14, 0.041."""
    v = float(v)
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def _component(value: np.ndarray, threshold: float, median: float, *, higher_better: bool) -> np.ndarray:
    """Logistic score on a log scale: 0.5 at the threshold, 0.9 at the median."""
    v = np.log(np.maximum(value, 1e-12))
    t, m = np.log(max(threshold, 1e-12)), np.log(max(median, 1e-12))
    span = (m - t) if higher_better else (t - m)
    span = span if span > 1e-6 else 1e-6
    u = (v - t) / span if higher_better else (t - v) / span
    return 1.0 / (1.0 + np.exp(np.clip(-_LN9 * u, -50, 50)))


def face_quality(
    images: Any,
    *,
    model: Any = None,
    sizes: Sequence[int | None] | None = None,
    codes: np.ndarray | None = None,
    reference: QualityReference | None = None,
    quantile: float = 0.01,
    min_size: int | None = None,
) -> list[FaceQuality]:
    """Judge each face crop: a score, pass/fail and the reasons.

    Args:
        images: `(n, H, W, C)` float32 in [0, 1] (at the model's input shape when a model is given),
            or one `(H, W, C)` image.
        model: the `Encoder` the faces are for; adds code_distance, and recon_error with a decoder.
        sizes: `n` face sides in source pixels (None where unknown), e.g. detection box widths.
        codes: the images' codes when already computed.
        reference: the good faces to compare with (default: `reference_for(model)`).
        quantile: a check fails when a face is worse than `1 - quantile` of the reference faces.
        min_size: smallest acceptable face side in source pixels (default: the image side).

    Returns:
        One `FaceQuality` per image.
    """
    x = _check(images, model)
    if not 0.0 < quantile < 0.5:
        raise FacespaceError(f"quantile must be in (0, 0.5); got {quantile}")
    if sizes is not None and len(sizes) != len(x):
        raise FacespaceError(f"sizes has {len(sizes)} entries for {len(x)} images; give one (or None) per image")
    ref = reference if reference is not None else reference_for(model, x.shape[1:])
    stats = None if model is None or ref.code_mean is None else (np.asarray(ref.code_mean), np.asarray(ref.code_std))
    m = measure_faces(x, model=model, codes=codes, code_stats=stats)
    where = f"{_ordinal(quantile)} percentile of the {ref.source}"
    where_hi = f"{_ordinal(1 - quantile)} percentile of the {ref.source}"
    scores = np.ones((len(x), 0))
    reasons: list[list[str]] = [[] for _ in range(len(x))]

    def add(score: np.ndarray) -> None:
        nonlocal scores
        scores = np.concatenate([scores, score[:, None]], axis=1)

    for name, label in (("sharpness", "blurry: Laplacian variance"), ("contrast", "flat: contrast")):
        t, med = ref.value(name, quantile), ref.value(name, 0.5)
        add(_component(m[name], t, med, higher_better=True))
        for i in np.flatnonzero(m[name] < t):
            reasons[i].append(f"{label} {_num(m[name][i])} < {_num(t)} ({where})")
    lo, hi, med = ref.value("brightness", quantile / 2), ref.value("brightness", 1 - quantile / 2), ref.value("brightness", 0.5)
    b = m["brightness"]
    u = np.minimum((b - lo) / max(med - lo, 1e-6), (hi - b) / max(hi - med, 1e-6))
    add(1.0 / (1.0 + np.exp(np.clip(-_LN9 * u, -50, 50))))
    side = f"{_ordinal(quantile / 2)}-{_ordinal(1 - quantile / 2)} percentile range of the {ref.source}"
    for i in np.flatnonzero(b < lo):
        reasons[i].append(f"too dark: brightness {b[i]:.3f} < {lo:.3f} ({side})")
    for i in np.flatnonzero(b > hi):
        reasons[i].append(f"too bright: brightness {b[i]:.3f} > {hi:.3f} ({side})")
    for name, label in (("recon_error", "not face-like: reconstruction error"),
                        ("code_distance", "not face-like: code distance")):
        if name in m and name in ref.quantiles:
            t, med = ref.value(name, 1 - quantile), ref.value(name, 0.5)
            add(_component(m[name], t, med, higher_better=False))
            for i in np.flatnonzero(m[name] > t):
                reasons[i].append(f"{label} {_num(m[name][i])} > {_num(t)} ({where_hi})")
    size_arr = None
    if sizes is not None:
        limit = int(min_size if min_size is not None else x.shape[1])
        size_arr = np.array([np.nan if s is None else float(s) for s in sizes])
        known = np.isfinite(size_arr)
        s_score = np.ones(len(x))
        s_score[known] = _component(size_arr[known], limit, 2.0 * limit, higher_better=True)
        add(s_score)
        for i in np.flatnonzero(known & (np.nan_to_num(size_arr, nan=np.inf) < limit)):
            reasons[i].append(f"too small: face {int(size_arr[i])} px < {limit} px (the model's input side)")
    score = scores.min(axis=1)
    return [FaceQuality(
        score=float(score[i]),
        recon_error=float(m["recon_error"][i]) if "recon_error" in m else None,
        sharpness=float(m["sharpness"][i]),
        size=None if size_arr is None or not np.isfinite(size_arr[i]) else int(size_arr[i]),
        brightness=float(m["brightness"][i]),
        ok=not reasons[i],
        reasons=tuple(reasons[i]),
        contrast=float(m["contrast"][i]),
        code_distance=float(m["code_distance"][i]) if "code_distance" in m else None,
    ) for i in range(len(x))]


def describe_refusals(labels: Sequence[str], qualities: Sequence[FaceQuality]) -> str:
    """One line per refused image: `label: reason; reason`."""
    return "\n".join(f"  {lab}: {'; '.join(q.reasons)}" for lab, q in zip(labels, qualities) if not q.ok)

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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from facespace.errors import FacespaceError
# the measures and the reference of good faces live in quality_reference
from facespace.protocol import Encoder
from facespace.people.quality_reference import (
    QualityReference, checked_images, measure_faces, reference_for,
)

__all__ = ["FaceQuality", "LowQualityError", "describe_refusals", "face_quality"]

_LN9 = float(np.log(9.0))


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
    model: Encoder | None = None,
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
        min_size: smallest acceptable face side in source pixels (default: the model's
            `min_face_side` where it has one, the smallest face it reads at full resolution; else
            the image side).

    Returns:
        One `FaceQuality` per image.
    """
    x = checked_images(images, model)
    if not 0.0 < quantile < 0.5:
        raise FacespaceError(f"quantile must be in (0, 0.5); got {quantile}")
    if sizes is not None and len(sizes) != len(x):
        raise FacespaceError(f"sizes has {len(sizes)} entries for {len(x)} images; give one (or None) per image")
    ref = reference if reference is not None else reference_for(model, x.shape[1:])
    stats = None if model is None or ref.code_mean is None else (np.asarray(ref.code_mean), np.asarray(ref.code_std))
    m = measure_faces(x, model=model, codes=codes, code_stats=stats,
                      sharpness_sides=sizes if ref.native_sharpness else None)
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
        limit = int(min_size if min_size is not None else getattr(model, "min_face_side", None) or x.shape[1])
        size_arr = np.array([np.nan if s is None else float(s) for s in sizes])
        known = np.isfinite(size_arr)
        s_score = np.ones(len(x))
        s_score[known] = _component(size_arr[known], limit, 2.0 * limit, higher_better=True)
        add(s_score)
        for i in np.flatnonzero(known & (np.nan_to_num(size_arr, nan=np.inf) < limit)):
            reasons[i].append(f"too small: face {int(size_arr[i])} px < {limit} px (the smallest face the model "
                              "reads at full resolution)")
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

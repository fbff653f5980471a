"""Explain a match: the two faces, what the model keeps of each, and where they differ.

The heatmap is drawn from the *reconstructions* when the model has a decoder: a reconstruction is
the face as the code sees it (background noise, lighting detail and anything else the code drops
are gone), so the difference of two reconstructions shows where the two codes disagree, in pixels.
A model without a decoder (a verifier) can only show the difference of the input faces.

Example:
    >>> from facespace.models.pca import PCAAutoencoder
    >>> x = np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32)
    >>> e = explain(PCAAutoencoder(code_size=4).fit(x), x[0], x[0])
    >>> e.distance, float(e.heatmap.max()), e.same
    (0.0, 0.0, None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.protocol import Encoder

# the heatmap colour scale tops out at the largest difference, but never below this, so that two
# near-identical faces give a dark map rather than their noise blown up to full brightness
MIN_HEAT_SCALE = 0.05


@dataclass(frozen=True)
class Explanation:
    """Why two faces match or not.

    Attributes:
        images: `(2, H, W, C)` float32 in [0, 1], the two faces as the model took them.
        reconstructions: `(2, H, W, C)` float32 in [0, 1], or None for a model without a decoder.
        heatmap: `(H, W)` float32 in [0, 1]: per pixel, `|a - b|` averaged over channels, of the
            reconstructions (of the images without a decoder). 0 where the two agree.
        distance: the distance between the two codes under `metric`.
        metric: "cosine" or "l2".
        threshold: the model's calibrated threshold for this metric, or None if it has none.
        same: `distance <= threshold`, or None without a threshold.
    """

    images: np.ndarray
    reconstructions: np.ndarray | None
    heatmap: np.ndarray
    distance: float
    threshold: float | None
    same: bool | None
    metric: str = "cosine"


def explain(model: Encoder, image_a: Any, image_b: Any, *, metric: str = "cosine") -> Explanation:
    """Compare two faces through a model and say where they differ.

    Args:
        model: any `Encoder`; with a decoder the heatmap compares reconstructions.
        image_a, image_b: `(H, W, C)` or `(1, H, W, C)` float32 in [0, 1] at the model's shape, or an
            image path (a face already cropped; for whole photos crop first with
            `facespace.photos.faces.crops_from_photos(..., detect=True)`).
        metric: "cosine" or "l2". The threshold stored with the model (`verify.save_threshold`) is
            used when it was calibrated for this metric.

    Returns:
        An `Explanation`.

    Raises:
        FacespaceError: images not of the model's shape, more than one image per side, a bad metric.
    """
    from facespace.pipelines.codes import decode, encode
    from facespace.protocol import has_decoder
    from facespace.data.inputs import as_images
    from facespace.people.distances import pair_distances
    from facespace.people.verification import stored_threshold

    faces = []
    for name, image in (("image_a", image_a), ("image_b", image_b)):
        x = as_images(model, image, check_faces=True)
        if len(x) != 1:
            raise FacespaceError(f"{name} must be one face; got {len(x)} images")
        faces.append(x[0])
    images = np.stack(faces).astype(np.float32)  # (2, H, W, C)
    codes = encode(model, images)  # (2, d)
    distance = float(pair_distances(codes[:1], codes[1:], metric=metric)[0])
    distance = 0.0 if abs(distance) < 1e-7 else distance  # cosine of a code with itself rounds off zero
    recon = decode(model, codes) if has_decoder(model) else None
    seen = recon if recon is not None else images
    heatmap = np.abs(seen[0] - seen[1]).mean(axis=-1).astype(np.float32)  # (H, W)
    stored = stored_threshold(model) or {}
    threshold = float(stored["threshold"]) if "threshold" in stored and stored.get("metric", "cosine") == metric else None
    same = None if threshold is None else bool(distance <= threshold)
    return Explanation(images, recon, np.clip(heatmap, 0.0, 1.0), distance, threshold, same, metric)


def heat_colours(heatmap: np.ndarray, *, vmax: float | None = None) -> np.ndarray:
    """`(H, W)` values in [0, 1] -> `(H, W, 3)` uint8 colours (OpenCV's inferno map: dark = equal).

    Args:
        heatmap: the values.
        vmax: the value shown brightest (default: the largest, at least `MIN_HEAT_SCALE`).
    """
    import cv2

    h = np.asarray(heatmap, np.float32)
    top = float(vmax) if vmax is not None else max(float(h.max(initial=0.0)), MIN_HEAT_SCALE)
    grey = (np.clip(h / top, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def caption(e: Explanation) -> str:
    """One line: distance, threshold and verdict."""
    text = f"{e.metric} distance {e.distance:.4f}"
    if e.threshold is None:
        return text + " (no calibrated threshold)"
    verdict = "same person" if e.same else "different people"
    return f"{text} {'<=' if e.same else '>'} {e.threshold:.4f}: {verdict}"


def explanation_picture(e: Explanation, *, scale: int = 4, title: bool = True) -> np.ndarray:
    """The explanation as one picture: A | reconstruction A | heatmap | reconstruction B | B.

    Without a decoder: A | heatmap | B. The heatmap's brightest colour is its largest difference
    (at least `MIN_HEAT_SCALE`). With `title`, a caption band underneath gives the distance,
    threshold and verdict.

    Args:
        e: from `explain`.
        scale: integer upscaling of each tile.
        title: add the caption band.

    Returns:
        `(h, w, 3)` uint8.
    """
    from facespace.grid import make_grid, to_uint8

    if int(scale) < 1:
        raise FacespaceError(f"scale must be a positive integer; got {scale}")
    heat = heat_colours(e.heatmap).astype(np.float32) / 255.0  # (H, W, 3)
    a, b = (to_uint8(x).astype(np.float32) / 255.0 for x in e.images)  # grey faces become RGB tiles
    if e.reconstructions is not None:
        ra, rb = (to_uint8(x).astype(np.float32) / 255.0 for x in e.reconstructions)
        tiles = [a, ra, heat, rb, b]
    else:
        tiles = [a, heat, b]
    pic = make_grid(np.stack(tiles), ncols=len(tiles), scale=int(scale))
    if not title:
        return pic
    return _with_caption(pic, caption(e))


def _with_caption(pic: np.ndarray, text: str) -> np.ndarray:
    """`pic` with a white band underneath holding `text` (shrunk to fit the width)."""
    import cv2

    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    width = pic.shape[1]
    size = 0.5
    (tw, th), base = cv2.getTextSize(text, font, size, thick)
    if tw > width - 8:
        size *= (width - 8) / tw
        (tw, th), base = cv2.getTextSize(text, font, size, thick)
    band = np.full((th + base + 10, width, 3), 255, np.uint8)
    cv2.putText(band, text, (4, th + 5), font, size, (0, 0, 0), thick, cv2.LINE_AA)
    return np.ascontiguousarray(np.concatenate([pic, band], axis=0))

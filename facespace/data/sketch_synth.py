"""Synthetic face sketches with known parts, for tests and for measuring what codes capture.

Each face is drawn as QuickDraw faces are: the outline first, then ears, eyes, nose and mouth, one
stroke-3 sequence in pixel units. Every part is one of a few kinds, and the kinds are returned as
labels; the face's size (the outline's width in pixels) is drawn independently of them, so size is
a nuisance a good code should not be ruled by.

With `equal_counts=True` every kind of eye, nose and mouth is drawn as one stroke of the same number
of points (the eye kinds dot, ring, dash, vee; the nose kinds dot, line, hook, triangle), so a
readout that only counts points or strokes cannot tell the kinds apart: a probe on such codes can
fail, and passes only when the codes hold the parts' shapes.

Example:
    >>> sk = make_face_sketches(4, seed=0)
    >>> sorted(sk.labels), sk.label_names["mouth"]
    (['ears', 'eyes', 'mouth', 'nose', 'outline', 'size'], ['smile', 'frown', 'straight', 'open'])
"""

from __future__ import annotations

import numpy as np

from facespace.data.sketch_formats import Sketches
from facespace.data.strokes import lines_to_stroke3
from facespace.errors import DataError

KINDS: dict[str, list[str]] = {
    "outline": ["circle", "tall", "square"],
    "ears": ["none", "round", "pointy"],
    "eyes": ["dot", "ring", "dash", "cross"],
    "nose": ["none", "line", "hook", "triangle"],
    "mouth": ["smile", "frown", "straight", "open"],
}


# the probed parts' kinds when every kind has the same number of strokes and points
KINDS_EQUAL: dict[str, list[str]] = {**KINDS, "eyes": ["dot", "ring", "dash", "vee"],
                                      "nose": ["dot", "line", "hook", "triangle"]}
EYE_POINTS, NOSE_POINTS, MOUTH_POINTS = 7, 4, 7  # per stroke, with equal_counts


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> np.ndarray:
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _outline(kind: int, rng: np.random.Generator) -> np.ndarray:
    """Closed outline in unit coordinates (half-width 1), y pointing down."""
    t = np.linspace(0, 2 * np.pi, 25) - np.pi / 2 + rng.uniform(-0.3, 0.3)
    ry = {0: 1.0, 1: 1.3, 2: 1.05}[kind] * rng.uniform(0.95, 1.05)
    if kind == 2:  # a rounded square: superellipse
        c, s = np.cos(t), np.sin(t)
        return np.stack([np.sign(c) * np.abs(c) ** 0.4, ry * np.sign(s) * np.abs(s) ** 0.4], axis=1)
    return np.stack([np.cos(t), ry * np.sin(t)], axis=1)


def _ears(kind: int, rng: np.random.Generator) -> list[np.ndarray]:
    if kind == 0:
        return []
    out = []
    for side in (-1, 1):
        if kind == 1:
            ear = _arc(side * 1.0, 0.0, 0.25, 0.3, -np.pi / 2, np.pi / 2, 6)
            ear[:, 0] = side * 1.0 + side * np.abs(ear[:, 0] - side * 1.0)
        else:
            ear = np.array([[side * 0.97, -0.3], [side * 1.35, -0.05], [side * 0.97, 0.2]])
        out.append(ear)
    return out


def _eye(kind: int, cx: float, cy: float, r: float) -> list[np.ndarray]:
    if kind == 0:  # a dot: a tiny closed loop
        return [_arc(cx, cy, 0.05, 0.05, 0, 2 * np.pi, 4)]
    if kind == 1:
        return [_arc(cx, cy, r, r, 0, 2 * np.pi, 9)]
    if kind == 2:
        return [np.array([[cx - r, cy], [cx + r, cy]])]
    return [np.array([[cx - r, cy - r], [cx + r, cy + r]]), np.array([[cx + r, cy - r], [cx - r, cy + r]])]


def _nose(kind: int, cy: float) -> list[np.ndarray]:
    if kind == 0:
        return []
    if kind == 1:
        return [np.array([[0.0, cy - 0.2], [0.0, cy + 0.15]])]
    if kind == 2:
        return [np.array([[0.05, cy - 0.2], [-0.08, cy + 0.12], [0.08, cy + 0.12]])]
    return [np.array([[0.0, cy - 0.2], [-0.12, cy + 0.12], [0.12, cy + 0.12], [0.0, cy - 0.2]])]


def _mouth(kind: int, cy: float, w: float) -> list[np.ndarray]:
    if kind == 0:
        return [_arc(0, cy - 0.12, w, 0.22, np.pi * 0.85, np.pi * 0.15, 7)]
    if kind == 1:
        return [_arc(0, cy + 0.15, w, 0.22, -np.pi * 0.85, -np.pi * 0.15, 7)]
    if kind == 2:
        return [np.array([[-w, cy], [w, cy]])]
    return [_arc(0, cy, w * 0.7, 0.13, np.pi, 3 * np.pi, 9)]


def _line(a: tuple[float, float], b: tuple[float, float], n: int) -> np.ndarray:
    return np.linspace(a, b, n)


def _polyline(points: list[tuple[float, float]], n: int) -> np.ndarray:
    """`n` points evenly spaced along the path through `points`."""
    pts = np.asarray(points, float)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    at = np.linspace(0, seg.sum(), n)
    cum = np.concatenate([[0], np.cumsum(seg)])
    return np.stack([np.interp(at, cum, pts[:, 0]), np.interp(at, cum, pts[:, 1])], axis=1)


def _eye_equal(kind: int, cx: float, cy: float, r: float) -> list[np.ndarray]:
    n = EYE_POINTS
    if kind == 0:  # a dot: a tiny closed loop
        return [_arc(cx, cy, 0.05, 0.05, 0, 2 * np.pi, n)]
    if kind == 1:
        return [_arc(cx, cy, r, r, 0, 2 * np.pi, n)]
    if kind == 2:
        return [_line((cx - r, cy), (cx + r, cy), n)]
    return [_polyline([(cx - r, cy - r), (cx, cy + r), (cx + r, cy - r)], n)]  # a vee


def _nose_equal(kind: int, cy: float) -> list[np.ndarray]:
    n = NOSE_POINTS
    if kind == 0:
        return [_arc(0.0, cy, 0.04, 0.04, 0, 2 * np.pi, n)]
    if kind == 1:
        return [_line((0.0, cy - 0.2), (0.0, cy + 0.15), n)]
    if kind == 2:
        return [_polyline([(0.05, cy - 0.2), (-0.08, cy + 0.12), (0.08, cy + 0.12)], n)]
    return [np.array([[0.0, cy - 0.2], [-0.12, cy + 0.12], [0.12, cy + 0.12], [0.0, cy - 0.2]])]


def _mouth_equal(kind: int, cy: float, w: float) -> list[np.ndarray]:
    n = MOUTH_POINTS
    if kind == 0:
        return [_arc(0, cy - 0.12, w, 0.22, np.pi * 0.85, np.pi * 0.15, n)]
    if kind == 1:
        return [_arc(0, cy + 0.15, w, 0.22, -np.pi * 0.85, -np.pi * 0.15, n)]
    if kind == 2:
        return [_line((-w, cy), (w, cy), n)]
    return [_arc(0, cy, w * 0.7, 0.13, np.pi, 3 * np.pi, n)]


def make_face_sketches(
    n: int,
    *,
    seed: int = 0,
    min_size: float = 40.0,
    max_size: float = 220.0,
    jitter: float = 0.02,
    equal_counts: bool = False,
) -> Sketches:
    """Draw `n` random faces as stroke-3 sketches.

    Args:
        n: how many.
        seed: random seed; the same seed gives the same faces.
        min_size: smallest face width in pixels.
        max_size: largest face width in pixels (QuickDraw canvases are 256 wide).
        jitter: point noise as a fraction of the face width.
        equal_counts: draw every kind of eye, nose and mouth with the same strokes and points
            (`KINDS_EQUAL` names them), so counting points tells the kinds apart no better than chance.

    Returns:
        `Sketches` with int labels "outline", "ears", "eyes", "nose", "mouth" (kind indices into
        `label_names`) and float "size" (face width in pixels). Sketches are 40–75 points long.
    """
    if n < 0:
        raise DataError(f"n must be 0 or more; got {n}")
    if not 0 < min_size <= max_size:
        raise DataError(f"need 0 < min_size <= max_size; got {min_size} and {max_size}")
    rng = np.random.default_rng(seed)
    kinds = KINDS_EQUAL if equal_counts else KINDS
    eye, nose, mouth = (_eye_equal, _nose_equal, _mouth_equal) if equal_counts else (_eye, _nose, _mouth)
    labels = {k: rng.integers(0, len(v), n) for k, v in kinds.items()}
    sizes = rng.uniform(min_size, max_size, n)
    strokes = []
    for i in range(n):
        eye_y, eye_dx = rng.uniform(-0.4, -0.2), rng.uniform(0.3, 0.45)
        eye_r = rng.uniform(0.1, 0.16)
        lines = [_outline(int(labels["outline"][i]), rng)]
        lines += _ears(int(labels["ears"][i]), rng)
        for side in (-1, 1):
            lines += eye(int(labels["eyes"][i]), side * eye_dx, eye_y, eye_r)
        lines += nose(int(labels["nose"][i]), rng.uniform(0.0, 0.1))
        lines += mouth(int(labels["mouth"][i]), rng.uniform(0.45, 0.6), rng.uniform(0.3, 0.45))
        half = sizes[i] / 2
        lines = [(line + rng.normal(0, jitter, line.shape)) * half + 128 for line in lines]
        strokes.append(lines_to_stroke3(lines))
    labels["size"] = sizes.astype(np.float32)
    source = f"synthetic faces (seed {seed}{', equal counts' if equal_counts else ''})"
    return Sketches(strokes, labels, {k: list(v) for k, v in kinds.items()}, source, 0)

"""Stroke drawings as arrays: raw polylines -> stroke-3 -> stroke-5, normalisation, padding.

Formats (those of Sketch-RNN, Ha & Eck 2017):

* **lines**: a drawing as a list of strokes, each an `(k, 2)` array of absolute `(x, y)` points.
* **stroke-3**: an `(n, 3)` float32 array of rows `[dx, dy, pen_lifted]`; `(dx, dy)` is the move
  from the previous point (the drawing starts at the origin) and `pen_lifted` is 1 on the last point
  of each stroke, else 0.
* **stroke-5**: an `(n, 5)` float32 array of rows `[dx, dy, p1, p2, p3]` with exactly one pen state
  set: p1 = pen stays down, p2 = pen lifted after this point, p3 = the drawing has ended. Padded
  rows are `[0, 0, 0, 0, 1]`.

Example:
    >>> import numpy as np
    >>> s3 = lines_to_stroke3([np.array([[0, 0], [10, 0]]), np.array([[10, 5], [0, 5]])])
    >>> s3.tolist()
    [[10.0, 0.0, 1.0], [0.0, 5.0, 0.0], [-10.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from facespace.errors import DataError

# the start token fed to a decoder before the first point: "pen down, nothing moved"
START_TOKEN = np.array([0, 0, 1, 0, 0], np.float32)


def check_stroke3(strokes: Any, *, what: str = "sketch") -> np.ndarray:
    """Return `strokes` as an `(n, 3)` float32 stroke-3 array, or raise `DataError` saying why.

    Refuses empty drawings, other shapes, NaN/infinite offsets and pen states other than 0 and 1.
    """
    try:
        s = np.asarray(strokes, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{what} is not a numeric array; expected stroke-3 rows [dx, dy, pen_lifted]") from None
    if s.ndim != 2 or s.shape[1] != 3:
        raise DataError(f"{what} has shape {s.shape}; expected (n, 3) stroke-3 rows [dx, dy, pen_lifted]")
    if len(s) == 0:
        raise DataError(f"{what} is an empty drawing (no points); drop it from the data")
    if not np.isfinite(s).all():
        raise DataError(f"{what} contains NaN or infinite offsets; drop or repair it")
    if not np.isin(s[:, 2], (0.0, 1.0)).all():
        bad = s[~np.isin(s[:, 2], (0.0, 1.0)), 2][0]
        raise DataError(f"{what} has pen state {bad:g}; the third column must be 0 (pen down) or 1 (lifted)")
    return s


def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer–Douglas–Peucker: drop points closer than `epsilon` to the simplified line.

    Args:
        points: `(k, 2)` float array, one polyline.
        epsilon: largest allowed distance of a dropped point from the kept segment.

    Returns:
        `(m, 2)` float array, `m <= k`, keeping the first and last point.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3 or epsilon <= 0:
        return pts.copy()
    keep = np.zeros(len(pts), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:  # iterative, so long raw strokes cannot exhaust the recursion limit
        lo, hi = stack.pop()
        if hi - lo < 2:
            continue
        a, b = pts[lo], pts[hi]
        seg = b - a
        rel = pts[lo + 1 : hi] - a
        norm = np.hypot(*seg)
        if norm == 0:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            mid = lo + 1 + i
            keep[mid] = True
            stack += [(lo, mid), (mid, hi)]
    return pts[keep]


def lines_to_stroke3(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Absolute polylines -> `(n, 3)` stroke-3 (the first point becomes the origin and is dropped)."""
    rows = []
    for line in lines:
        line = np.asarray(line, dtype=np.float32).reshape(-1, 2)
        if len(line) == 0:
            continue
        pen = np.zeros((len(line), 1), np.float32)
        pen[-1] = 1
        rows.append(np.hstack([line, pen]))
    if not rows:
        raise DataError("drawing has no points; drop it from the data")
    s = np.vstack(rows)
    s[1:, :2] = s[1:, :2] - s[:-1, :2]
    return s[1:] if len(s) > 1 else np.array([[0, 0, 1]], np.float32)


def stroke3_to_lines(strokes: np.ndarray) -> list[np.ndarray]:
    """`(n, 3)` stroke-3 -> list of `(k, 2)` absolute polylines, starting at the origin."""
    s = np.asarray(strokes, dtype=np.float32)
    pts = np.vstack([[0.0, 0.0], np.cumsum(s[:, :2], axis=0)])
    lifted = np.concatenate([[0.0], s[:, 2]])
    lines, start = [], 0
    for i in range(len(pts)):
        if lifted[i] == 1 and i > 0 or i == len(pts) - 1:
            lines.append(pts[start : i + 1])
            start = i + 1
    return [line for line in lines if len(line)]


def raw_to_stroke3(drawing: Sequence[Sequence[Sequence[float]]], *, epsilon: float = 2.0, size: float = 255.0) -> np.ndarray:
    """A QuickDraw drawing `[[xs], [ys](, [ts])]` per stroke -> simplified `(n, 3)` stroke-3.

    As QuickDraw's own "simplified" files: align to the top-left, scale the longer side to `size`
    (aspect kept), then Ramer–Douglas–Peucker with `epsilon` (in those rescaled units).

    Raises:
        DataError: an empty drawing, a stroke whose xs and ys differ in length, or non-numbers.
    """
    if not isinstance(drawing, (list, tuple)) or len(drawing) == 0:
        raise DataError("drawing is empty (no strokes); drop it from the data")
    lines = []
    for j, stroke in enumerate(drawing):
        if not isinstance(stroke, (list, tuple)) or len(stroke) < 2:
            raise DataError(f"stroke {j} is not [[xs], [ys]] or [[xs], [ys], [ts]]")
        try:
            xs, ys = np.asarray(stroke[0], np.float64), np.asarray(stroke[1], np.float64)
        except (TypeError, ValueError):
            raise DataError(f"stroke {j} has non-numeric coordinates") from None
        if xs.ndim != 1 or xs.shape != ys.shape:
            raise DataError(f"stroke {j} has {xs.size} x values but {ys.size} y values; they must pair up")
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise DataError(f"stroke {j} has NaN or infinite coordinates")
        if len(xs):
            lines.append(np.stack([xs, ys], axis=1))
    if not lines:
        raise DataError("drawing has strokes but no points; drop it from the data")
    allpts = np.vstack(lines)
    lo = allpts.min(axis=0)
    extent = float((allpts.max(axis=0) - lo).max())
    factor = size / extent if extent > 0 else 1.0
    lines = [rdp((line - lo) * factor, epsilon) for line in lines]
    return lines_to_stroke3([np.round(line) for line in lines])


def stroke3_to_stroke5(strokes: np.ndarray, max_len: int | None = None) -> np.ndarray:
    """`(n, 3)` stroke-3 -> `(max_len, 5)` stroke-5, padded with end rows `[0, 0, 0, 0, 1]`.

    Raises:
        DataError: when the sketch is longer than `max_len`.
    """
    s = np.asarray(strokes, dtype=np.float32)
    n = len(s)
    max_len = n if max_len is None else int(max_len)
    if n > max_len:
        raise DataError(f"sketch has {n} points, more than max_len={max_len}; raise max_len or drop long sketches")
    out = np.zeros((max_len, 5), np.float32)
    out[:n, :2] = s[:, :2]
    out[:n, 3] = s[:, 2]
    out[:n, 2] = 1 - s[:, 2]
    out[n:, 4] = 1
    return out


def stroke5_to_stroke3(strokes: np.ndarray) -> np.ndarray:
    """`(T, 5)` stroke-5 -> `(n, 3)` stroke-3, cut at the first end row (p3 largest)."""
    s = np.asarray(strokes, dtype=np.float32)
    pen = np.argmax(s[:, 2:5], axis=1)
    ends = np.flatnonzero(pen == 2)
    n = int(ends[0]) if len(ends) else len(s)
    out = np.zeros((n, 3), np.float32)
    out[:, :2] = s[:n, :2]
    out[:, 2] = (pen[:n] == 1).astype(np.float32)
    return out


def bounding_extent(strokes: np.ndarray) -> float:
    """The longer side of the sketch's bounding box (0 for a single point)."""
    pts = np.vstack([[0.0, 0.0], np.cumsum(np.asarray(strokes, np.float64)[:, :2], axis=0)])
    return float((pts.max(axis=0) - pts.min(axis=0)).max())


def fit_unit_box(strokes: np.ndarray) -> np.ndarray:
    """Scale one sketch so the longer side of its bounding box is 1: its size no longer shows."""
    s = np.array(strokes, dtype=np.float32)
    extent = bounding_extent(s)
    if extent > 0:
        s[:, :2] /= extent
    return s


def offset_scale(sketches: Sequence[np.ndarray]) -> float:
    """The standard deviation of all `dx` and `dy` offsets (Sketch-RNN's normalising factor)."""
    if len(sketches) == 0:
        raise DataError("no sketches to compute the offset scale from")
    offsets = np.concatenate([np.asarray(s, np.float64)[:, :2].ravel() for s in sketches])
    scale = float(offsets.std())
    return scale if scale > 0 else 1.0


def normalize(sketches: Sequence[np.ndarray], scale: float) -> list[np.ndarray]:
    """Divide every offset by `scale` (from `offset_scale` of the training set)."""
    out = []
    for s in sketches:
        s = np.array(s, dtype=np.float32)
        s[:, :2] /= scale
        out.append(s)
    return out


def limit_length(sketches: Sequence[np.ndarray], max_len: int, *, mode: str = "drop") -> tuple[list[np.ndarray], np.ndarray]:
    """Keep sketches of at most `max_len` points.

    Args:
        sketches: stroke-3 arrays.
        max_len: the longest sequence kept.
        mode: "drop" leaves longer sketches out (Sketch-RNN's choice); "truncate" cuts them.

    Returns:
        `(kept sketches, indices into the input)`.
    """
    if mode not in ("drop", "truncate"):
        raise DataError(f"unknown length mode {mode!r}; expected one of: drop, truncate")
    if max_len < 1:
        raise DataError(f"max_len must be at least 1; got {max_len}")
    kept, idx = [], []
    for i, s in enumerate(sketches):
        if len(s) <= max_len:
            kept.append(s)
        elif mode == "truncate":
            cut = np.array(s[:max_len], dtype=np.float32)
            cut[-1, 2] = 1
            kept.append(cut)
        else:
            continue
        idx.append(i)
    return kept, np.asarray(idx, dtype=np.int64)


def pad_batch(sketches: Sequence[np.ndarray], max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stroke-3 sketches -> `(B, T, 5)` float32 stroke-5 batch and `(B,)` int64 lengths.

    `T` is `max_len` or the longest sketch + 1, so every sketch ends with at least one end row.
    The mask of real points is `np.arange(T) < lengths[:, None]`.
    """
    lengths = np.array([len(s) for s in sketches], dtype=np.int64)
    if len(lengths) == 0:
        raise DataError("cannot pad an empty batch of sketches")
    T = int(lengths.max()) + 1 if max_len is None else int(max_len)
    batch = np.stack([stroke3_to_stroke5(s, T) for s in sketches])
    return batch, lengths


def collate_strokes(sketches: Sequence[np.ndarray]):
    """DataLoader `collate_fn`: a list of normalised stroke-3 arrays -> `(x, lengths)` tensors.

    `x` is `(B, T, 5)` float32 stroke-5 with `T` = longest + 1; `lengths` is `(B,)` int64.
    """
    import torch

    batch, lengths = pad_batch(sketches)
    return torch.from_numpy(batch), torch.from_numpy(lengths)

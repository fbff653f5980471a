"""Draw stroke-3 sketches: raster images (PNG, grids) and SVG.

Each sketch is scaled to fit its canvas with a margin, so sketches of any units (pixels, the unit
box, normalised offsets) draw the same way.

Example:
    >>> import numpy as np
    >>> s3 = np.array([[10, 0, 0], [0, 10, 0], [-10, 0, 1]], np.float32)
    >>> render_sketch(s3, size=32).shape
    (32, 32, 1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facespace.data.strokes import stroke3_to_lines
from facespace.files import write_text_atomic
from facespace.grid import make_grid, save_png


def _fitted_lines(strokes: np.ndarray, size: float, margin: float) -> list[np.ndarray]:
    """Absolute polylines scaled and centred into a `size` x `size` canvas."""
    s = np.asarray(strokes, dtype=np.float64)
    if len(s) == 0:
        return []
    lines = stroke3_to_lines(s)
    pts = np.vstack(lines)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float((hi - lo).max())
    usable = size - 2 * margin
    factor = usable / extent if extent > 0 else 1.0
    offset = margin + (usable - (hi - lo) * factor) / 2 - lo * factor
    return [line * factor + offset for line in lines]


def render_sketch(strokes: np.ndarray, *, size: int = 64, line_width: float = 1.5, margin: int = 3) -> np.ndarray:
    """One stroke-3 sketch -> `(size, size, 1)` float32 image, black lines on white, in [0, 1].

    An empty sketch gives a white image.
    """
    from PIL import Image, ImageDraw

    scale = 4  # draw large and shrink: antialiased lines without a dependency
    img = Image.new("L", (size * scale, size * scale), 255)
    draw = ImageDraw.Draw(img)
    width = max(1, int(round(line_width * scale)))
    for line in _fitted_lines(strokes, size * scale, margin * scale):
        if len(line) == 1:
            x, y = line[0]
            draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=0)
        else:
            draw.line([tuple(p) for p in line], fill=0, width=width, joint="curve")
    img = img.resize((size, size), Image.LANCZOS)
    return (np.asarray(img, dtype=np.float32) / 255.0)[..., None]


def render_sketches(sketches: Sequence[np.ndarray], *, size: int = 64, line_width: float = 1.5) -> np.ndarray:
    """Stroke-3 sketches -> `(n, size, size, 1)` float32 images in [0, 1]."""
    if len(sketches) == 0:
        return np.zeros((0, size, size, 1), np.float32)
    return np.stack([render_sketch(s, size=size, line_width=line_width) for s in sketches])


def sketch_grid(sketches: Sequence[np.ndarray], *, size: int = 64, ncols: int | None = None) -> np.ndarray:
    """Sketches tiled into one `(h, w, 3)` uint8 picture (`facespace.grid.make_grid`)."""
    return make_grid(render_sketches(sketches, size=size), ncols=ncols)


def save_sketch_grid(sketches: Sequence[np.ndarray], path: str | os.PathLike, *, size: int = 64, ncols: int | None = None) -> Path:
    """Write sketches as one grid PNG, atomically. Returns the path."""
    return save_png(sketch_grid(sketches, size=size, ncols=ncols), path)


def sketch_svg(strokes: np.ndarray, *, size: int = 256, line_width: float = 2.0, margin: int = 8) -> str:
    """One stroke-3 sketch -> an SVG document (one `<polyline>` per stroke)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        f'<rect width="{size}" height="{size}" fill="white"/>',
    ]
    for line in _fitted_lines(strokes, size, margin):
        points = " ".join(f"{x:.2f},{y:.2f}" for x, y in line)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="black" stroke-width="{line_width:g}" '
            'stroke-linecap="round" stroke-linejoin="round"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def save_sketch_svg(strokes: np.ndarray, path: str | os.PathLike, **options) -> Path:
    """Write one sketch as an SVG file, atomically. Returns the path."""
    return write_text_atomic(path, sketch_svg(strokes, **options))


def pairs_grid(top: Sequence[np.ndarray], bottom: Sequence[np.ndarray], *, size: int = 64, ncols: int = 8) -> np.ndarray:
    """Sketches `top[i]` drawn over `bottom[i]` (e.g. originals over reconstructions): rows of
    `ncols` from `top`, each followed by the matching row from `bottom`. `(h, w, 3)` uint8."""
    if len(top) != len(bottom):
        raise ValueError(f"pairs_grid needs as many top as bottom sketches; got {len(top)} and {len(bottom)}")
    a, b = render_sketches(top, size=size), render_sketches(bottom, size=size)
    blank = np.ones((1, size, size, 1), np.float32)
    rows = []
    for i in range(0, len(a), ncols):
        for part in (a[i : i + ncols], b[i : i + ncols]):
            rows.append(np.concatenate([part, np.repeat(blank, ncols - len(part), 0)]))
    return make_grid(np.concatenate(rows), ncols=ncols)

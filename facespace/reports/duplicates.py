"""A self-contained HTML page of near-duplicates: thumbnails side by side, distances, nearest first.

Two layouts: pairs of a new set against a reference set (`facespace index duplicates NEW --against REF
--report dup.html`), and groups within one index (`facespace index duplicates I.index --report dup.html`).
Thumbnails are read from the paths the sets record and inlined as PNG data URIs
(`facespace.reports.html`), so the page opens offline from the file alone; a path that cannot be read
shows "(image not found)" instead. Every path and name is HTML-escaped.

Example:
    >>> from facespace.reports.duplicates import pairs_page
    >>> html = pairs_page([({"path": "new/a.jpg"}, {"path": "ref/a.jpg"}, 0.01)], max_distance=0.05)
    >>> "0.01" in html and "new/a.jpg" in html
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.reports.html import escape, page, picture

THUMB = 96  # thumbnail side in pixels: enough to judge a duplicate, small enough for big reports
MAX_ROWS = 500  # pairs or groups shown; the rest are counted (the CSV has them all)

Meta = dict[str, Any]


def thumbnail(path: Any, size: int = THUMB) -> np.ndarray | None:
    """The image at `path` shrunk to fit `size x size` (aspect kept), `(h, w, C)` float32, or None
    when it cannot be read (a missing file, an archive member, a path that is not a string)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return None
    from facespace.data import read_image
    from facespace.errors import FacespaceError

    try:
        image = read_image(path, max_side=size)
    except (FacespaceError, OSError):
        return None
    return image[..., 0] if image.shape[-1] == 1 else image


def _cell(meta: Meta, size: int) -> str:
    path = meta.get("path", "")
    label = str(path) if not meta.get("name") else f"{meta['name']} — {path}"
    image = thumbnail(path, size)
    if image is None:
        return f'<figure><div class="muted">(image not found)</div><figcaption>{escape(label)}</figcaption></figure>'
    return picture(image, caption=label, alt=str(path))


def pairs_page(
    pairs: Sequence[tuple[Meta, Meta, float]],
    *,
    max_distance: float,
    metric: str = "cosine",
    new_label: str = "new",
    ref_label: str = "reference",
    size: int = THUMB,
    max_rows: int = MAX_ROWS,
) -> str:
    """HTML of near-duplicate pairs, nearest first: new image, reference image, distance.

    Args:
        pairs: `(new metadata, reference metadata, distance)`; metadata dicts hold "path" (and "name").
        max_distance: the threshold used (shown in the heading).
        metric: the distance's metric (shown).
        new_label, ref_label: what the two sets are (e.g. their folders).
        size: thumbnail side in pixels.
        max_rows: pairs shown; the page says how many more there are.

    Returns:
        The whole page as a string.
    """
    pairs = sorted(pairs, key=lambda p: float(p[2]))
    shown = pairs[:max_rows]
    rows = "".join(
        f'<tr><td class="num">{i + 1}</td><td>{_cell(a, size)}</td><td>{_cell(b, size)}</td>'
        f'<td class="num">{float(d):.4g}</td></tr>'
        for i, (a, b, d) in enumerate(shown)
    )
    more = f'<p class="muted">{len(pairs) - len(shown)} more pair(s) not shown; the CSV lists them all.</p>' if len(pairs) > len(shown) else ""
    body = (
        f"<h1>Near-duplicates: {escape(new_label)} against {escape(ref_label)}</h1>"
        f"<p>{len(pairs)} pair(s) within {escape(f'{max_distance:g}')} ({escape(metric)} distance), nearest first; "
        f"{len({str(a.get('path')) for a, _, _ in pairs})} new image(s) have a near-duplicate.</p>"
        + (
            f"<table><thead><tr><th>#</th><th>new</th><th>reference</th><th>distance</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            if pairs
            else "<p>No near-duplicates found: try a larger --max-distance.</p>"
        )
        + more
    )
    return page(f"near-duplicates: {new_label} against {ref_label}", body)


def groups_page(groups: Sequence[Sequence[Meta]], *, max_distance: float, size: int = THUMB, max_rows: int = MAX_ROWS) -> str:
    """HTML of near-duplicate groups within one set: one row of thumbnails per group, largest first."""
    shown = list(groups)[:max_rows]
    rows = "".join(
        f'<h2>group {g} ({len(members)} images)</h2><div>{"".join(_cell(m, size) for m in members)}</div>'
        for g, members in enumerate(shown)
    )
    more = f'<p class="muted">{len(groups) - len(shown)} more group(s) not shown.</p>' if len(groups) > len(shown) else ""
    body = (
        f"<h1>Near-duplicate groups</h1><p>{len(groups)} group(s) linked by distances within "
        f"{escape(f'{max_distance:g}')}.</p>" + (rows or "<p>No near-duplicates found.</p>") + more
    )
    return page("near-duplicate groups", body)


def write_pairs_report(path: str | os.PathLike, pairs: Sequence[tuple[Meta, Meta, float]], **options: Any) -> Path:
    """Write `pairs_page(pairs, **options)` to `path` atomically; returns the path."""
    from facespace.files import write_text_atomic

    return write_text_atomic(path, pairs_page(pairs, **options))


def write_groups_report(path: str | os.PathLike, groups: Sequence[Sequence[Meta]], **options: Any) -> Path:
    """Write `groups_page(groups, **options)` to `path` atomically; returns the path."""
    from facespace.files import write_text_atomic

    return write_text_atomic(path, groups_page(groups, **options))

"""A self-contained HTML page of near-duplicates: thumbnails side by side, distances, nearest first.

Two layouts: pairs of a new set against a reference set (`facespace index duplicates NEW --against REF
--report dup.html`), and groups within one index (`facespace index duplicates I.index --report dup.html`).
Thumbnails are read from the paths the sets record and inlined as PNG data URIs
(`facespace.reports.html`), so the page opens offline from the file alone; a path that cannot be read
shows "(image not found)" instead. Every path and name is HTML-escaped. A threshold learned from the
set (`--max-distance auto`, `facespace.pipelines.duplicate_threshold`) is drawn above the list: the
histograms of the planted near-copies' and the distinct images' distances, with each level's
threshold, as inline SVG, and, when the pairs were confirmed in pixel space
(`facespace.pipelines.duplicate_confirm`), the same two in pixels with the pixel thresholds.

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

from facespace.pipelines.duplicate_levels import LEVELS, LearnedThreshold
from facespace.reports.html import escape, page, picture, table

THUMB = 96  # thumbnail side in pixels: enough to judge a duplicate, small enough for big reports
MAX_ROWS = 500  # pairs or groups shown; the rest are counted (the CSV has them all)
BINS = 40  # histogram bins over the distances' log range

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
    learned: LearnedThreshold | None = None,
) -> str:
    """HTML of near-duplicate pairs, nearest first: new image, reference image, distance.

    Args:
        pairs: `(new metadata, reference metadata, distance)`; metadata dicts hold "path" (and "name").
        max_distance: the threshold used (shown in the heading).
        metric: the distance's metric (shown).
        new_label, ref_label: what the two sets are (e.g. their folders).
        size: thumbnail side in pixels.
        max_rows: pairs shown; the page says how many more there are.
        learned: the threshold learned from the sets, drawn as histograms (None: a threshold given).

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
        + threshold_section(learned)
        + (
            f"<table><thead><tr><th>#</th><th>new</th><th>reference</th><th>distance</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            if pairs
            else "<p>No near-duplicates found: try a larger --max-distance (or --level similar).</p>"
        )
        + more
    )
    return page(f"near-duplicates: {new_label} against {ref_label}", body)


def groups_page(groups: Sequence[Sequence[Meta]], *, max_distance: float, size: int = THUMB, max_rows: int = MAX_ROWS,
                learned: LearnedThreshold | None = None) -> str:
    """HTML of near-duplicate groups within one set: one row of thumbnails per group, largest first
    (and, with `learned`, the histograms the threshold came from)."""
    shown = list(groups)[:max_rows]
    rows = "".join(
        f'<h2>group {g} ({len(members)} images)</h2><div>{"".join(_cell(m, size) for m in members)}</div>'
        for g, members in enumerate(shown)
    )
    more = f'<p class="muted">{len(groups) - len(shown)} more group(s) not shown.</p>' if len(groups) > len(shown) else ""
    body = (
        f"<h1>Near-duplicate groups</h1><p>{len(groups)} group(s) linked by distances within "
        f"{escape(f'{max_distance:g}')}.</p>" + threshold_section(learned)
        + (rows or "<p>No near-duplicates found.</p>") + more
    )
    return page("near-duplicate groups", body)


def threshold_section(learned: LearnedThreshold | None) -> str:
    """HTML of a learned threshold: how it was found, a histogram of both distributions (inline SVG)
    with every level's threshold marked, and their quantiles; "" for None."""
    if learned is None:
        return ""
    if learned.how == "fallback":
        return (f"<h2>Threshold</h2><p>{escape(learned.max_distance)} ({escape(learned.metric)} distance), a fixed "
                f"level: {escape(' '.join(learned.notes))}</p>" + _pixel_section(learned, ()))
    copies = learned.copy_distances()
    distinct = learned.distinct[np.isfinite(learned.distinct)]
    quantiles = (0.0, 0.05, 0.5, 0.95, 1.0)
    rows = [[f"near-copies counted at level {learned.level}", len(copies), *np.quantile(copies, quantiles)],
            ["nearest distinct images", len(distinct), *np.quantile(distinct, quantiles)]]
    rows += [[f"copies: {a}", len(d), *np.quantile(d, quantiles)] for a, d in learned.copies.items()]
    source = "image files" if learned.how == "learned" else "codes decoded by the model"
    return (
        f"<h2>Threshold: {escape(f'{learned.max_distance:.4g}')} ({escape(learned.metric)} distance, "
        f"level {escape(learned.level)})</h2>"
        f"<p>Learned from this set ({learned.n_items} items): copies of its own {escape(source)}, altered "
        f"{len(learned.copies)} ways, against each item's nearest distinct item. "
        + ", ".join(f"{escape(lv)}: {t:.4g}" for lv, t in learned.thresholds.items()) + ".</p>"
        + histogram_svg({"near-copies": copies, "distinct images": distinct}, learned.thresholds, chosen=learned.level)
        + table(["distances", "count", *[f"q{q:g}" for q in quantiles]], rows)
        + _pixel_section(learned, quantiles)
        + "".join(f'<p class="muted">{escape(n)}</p>' for n in learned.notes)
    )


def _pixel_section(learned: LearnedThreshold, quantiles: Sequence[float]) -> str:
    """HTML of the pixel stage: the candidates' code threshold, the pixel threshold and its two
    distributions (or why pairs were not confirmed)."""
    if not learned.confirmed:
        return f'<p class="muted">{escape(learned.confirm_note)}</p>' if learned.confirm_note else ""
    copies = learned.pixel_copy_distances()
    distinct = learned.pixel_distinct[np.isfinite(learned.pixel_distinct)]
    rows = [[f"near-copies counted at level {learned.level}", len(copies), *np.quantile(copies, quantiles)],
            ["nearest distinct images (by the model)", len(distinct), *np.quantile(distinct, quantiles)]]
    return (
        f"<h2>Confirmed in pixel space: {escape(f'{learned.pixel_max_distance:.4g}')} (cosine, "
        f"{escape(learned.pixels.describe())})</h2>"
        f"<p>Candidate pairs within {learned.candidate_distance:.4g} of the codes (their next looser level) are "
        f"kept when their two image files lie within the pixel threshold, learned from the same altered copies "
        f"and each sampled item's nearest distinct item by the model. "
        + ", ".join(f"{escape(lv)}: {t:.4g}" for lv, t in learned.pixel_thresholds.items()) + ".</p>"
        + histogram_svg({"near-copies": copies, "distinct images": distinct}, learned.pixel_thresholds,
                        chosen=learned.level)
        + table(["pixel distances", "count", *[f"q{q:g}" for q in quantiles]], rows)
    )


def histogram_svg(series: dict[str, np.ndarray], marks: dict[str, float], *, chosen: str | None = None,
                  width: int = 720, height: int = 220, bins: int = BINS) -> str:
    """Overlaid histograms of positive distances on a log axis, as an inline `<svg>`.

    Args:
        series: name -> `(n,)` distances (zeros are drawn in the first bin).
        marks: name -> distance, drawn as vertical lines (`chosen` bold).
        width, height: pixels.
        bins: bins over the log range of all values and marks.

    Returns:
        `<svg>...</svg>`; each series' bars are scaled to its own largest bin.
    """
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    values = [np.asarray(v, np.float64) for v in series.values()]
    positive = np.concatenate([v[v > 0] for v in values] + [np.array([m for m in marks.values() if m > 0])])
    if len(positive) == 0:
        return ""
    lo, hi = np.log10(positive.min()) - 0.1, np.log10(positive.max()) + 0.1
    edges = np.linspace(lo, hi, bins + 1)
    left, bottom, top = 40, height - 30, 24
    span = width - left - 10

    def x(v: float) -> float:
        return left + (np.log10(max(v, 10 ** lo)) - lo) / (hi - lo) * span

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              f'aria-label="histograms of distances">'),
             f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#999"/>']
    for k, (name, v) in enumerate(zip(series, values)):
        counts, _ = np.histogram(np.log10(np.maximum(v, 10 ** lo)), bins=edges)
        scale = (bottom - top) / max(int(counts.max(initial=0)), 1)
        colour = colours[k % len(colours)]
        for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
            if c:
                x0 = left + (e0 - lo) / (hi - lo) * span
                w = (e1 - e0) / (hi - lo) * span
                parts.append(f'<rect x="{x0:.1f}" y="{bottom - c * scale:.1f}" width="{w:.1f}" height="{c * scale:.1f}" '
                             f'fill="{colour}" fill-opacity="0.45"><title>{escape(name)}: {int(c)}</title></rect>')
        parts.append(f'<text x="{left + 4 + 150 * k}" y="14" font-size="12" fill="{colour}">&#9632; {escape(name)} '
                     f'({len(v)})</text>')
    for decade in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
        xd = left + (decade - lo) / (hi - lo) * span
        parts.append(f'<text x="{xd:.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle">1e{decade}</text>')
    for name, m in marks.items():
        xm = x(m)
        bold = name == chosen
        parts.append(f'<line x1="{xm:.1f}" y1="{top - 6}" x2="{xm:.1f}" y2="{bottom}" stroke="#000" '
                     f'stroke-width="{2 if bold else 1}" stroke-dasharray="{"none" if bold else "4 3"}"/>'
                     f'<text x="{xm + 3:.1f}" y="{top + 4 + 12 * LEVELS.index(name) if name in LEVELS else top + 4}" '
                     f'font-size="11">{escape(name)} {m:.3g}</text>')
    return "".join(parts) + "</svg>"


def write_pairs_report(path: str | os.PathLike, pairs: Sequence[tuple[Meta, Meta, float]], **options: Any) -> Path:
    """Write `pairs_page(pairs, **options)` to `path` atomically; returns the path."""
    from facespace.files import write_text_atomic

    return write_text_atomic(path, pairs_page(pairs, **options))


def write_groups_report(path: str | os.PathLike, groups: Sequence[Sequence[Meta]], **options: Any) -> Path:
    """Write `groups_page(groups, **options)` to `path` atomically; returns the path."""
    from facespace.files import write_text_atomic

    return write_text_atomic(path, groups_page(groups, **options))

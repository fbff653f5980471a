"""Duplicate levels and the statistics that place a threshold between two distributions of distances.

A set's near-copies (codes of altered copies, measured against their originals) and its distinct
images (each item's nearest *distinct* item) give two distributions; `choose_thresholds` puts each
level's threshold (`LEVELS`: exact, near, similar) where the level's copies are reached and distinct
images are not. `facespace.pipelines.duplicate_threshold.learn_max_distance` makes and measures the
two on a user's set. The constants were picked on a development set (benchmarks/duplicates.py
--split dev).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from facespace.errors import FacespaceError
from facespace.index.index import Index, IndexingError

LEVELS = ("exact", "near", "similar")
# what each level counts as a duplicate (the CLI's --level help is built from these)
LEVEL_MEANINGS = {
    "exact": "byte- or pixel-identical files and re-encodes of one image (JPEG quality 85 or more)",
    "near": ("(default) also edited copies of one image: JPEG quality down to 50, resized to 50-100 %, "
             "up to 2 % cropped off the edges, brightness +-10 %"),
    "similar": ("looser: also near shots of one scene (photos taken seconds apart); the threshold lies "
                "between the near-copies and the set's distinct images, toward the distinct side"),
}
# the level whose code threshold gives the candidate pairs that pixel space confirms at a level: one
# level looser, so that the codes bring the recall and the pixels the precision ("similar" has none looser)
LOOSER = {"exact": "near", "near": "similar", "similar": "similar"}
# alteration -> the lowest level that counts its copies as duplicates ("near" holds the "exact" ones)
ALTERATIONS = {
    "jpeg95": "exact", "jpeg85": "exact",
    "jpeg70": "near", "jpeg50": "near",
    "resize90": "near", "resize70": "near", "resize50": "near",
    "trim1": "near", "trim2": "near", "corner2": "near",
    "brighter10": "near", "darker10": "near",
}
REACH_QUANTILE = 0.95  # the share of a level's planted copies that its threshold must reach ...
MARGIN = 1.5  # ... times this, for copies a little farther than the sample's
FLOOR_QUANTILE = 0.01  # the distinct images' low quantile that bounds every level ...
CAP = 0.7  # ... times this
SIMILAR_TOWARD = 0.75  # "similar": this far (in log distance) from the near-copies to the distinct images
SIMILAR_QUANTILE = 0.05  # ... whose low quantile this is
GAP = 0.5  # a nearest neighbour nearer than GAP x the next one is taken to be a copy, and skipped
NEIGHBOURS = 4  # neighbours looked at per item: copies in groups of up to NEIGHBOURS - 1 are skipped
SAMPLE = 48  # images altered (each in every way of ALTERATIONS)
DISTINCT_SAMPLE = 2000  # items whose nearest distinct neighbour is measured
# the fewest items a threshold is learned from. Measured on the dev sets (pixels and PCA; 6 random
# sets per size of one person's photos plus one planted copy, and of 3-30 LFW photos with planted
# copies): from 3 items on (a copy pair and one other image) every copy was found and no distinct
# pair linked; 2 items hold a single distance, the pair's own, so there is nothing to compare with
MIN_IMAGES = 3
FALLBACK_COSINE = 1e-4  # the fixed cosine threshold of a set too small to learn from


@dataclass
class LearnedThreshold:
    """A threshold learned from a set, with the two distributions it came from.

    Attributes:
        max_distance: the threshold of `level`, in `metric` distance.
        level: "exact", "near" or "similar".
        metric: the distance's metric ("cosine" or "l2").
        how: "learned" (from the set's image files), "decoded" (from its codes through the model's
            decoder) or "fallback" (a fixed level: the set is too small).
        thresholds: every level's threshold, `{level: distance}` (equal to `max_distance` for all
            levels after a fallback).
        copies: alteration -> `(m,)` float64 distances of the planted copies to their originals.
        distinct: `(k,)` float64 distances of sampled items to their nearest distinct item.
        n_items: items of the set(s) the threshold is for.
        notes: what the user should know (copies a threshold does not reach, why a fallback).
        pixel_thresholds: every level's threshold of the pixel stage (cosine distance between small
            pixel codes of the two files, `facespace.pipelines.duplicate_confirm`); empty when pairs
            are not confirmed in pixel space.
        pixel_copies: alteration -> `(m,)` pixel distances of the same planted copies.
        pixel_distinct: `(k,)` pixel distances of sampled items to their nearest distinct item by the
            model (the very pairs of `distinct`, where both files could be read).
        pixels: how the pixel codes are read (a `facespace.pipelines.duplicate_confirm.PixelReader`),
            or None.
        confirm_note: why pairs are not confirmed in pixel space (empty when they are).
    """

    max_distance: float
    level: str
    metric: str
    how: str
    thresholds: dict[str, float]
    copies: dict[str, np.ndarray] = field(default_factory=dict)
    distinct: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_items: int = 0
    notes: list[str] = field(default_factory=list)
    pixel_thresholds: dict[str, float] = field(default_factory=dict)
    pixel_copies: dict[str, np.ndarray] = field(default_factory=dict)
    pixel_distinct: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pixels: Any = None
    confirm_note: str = ""

    @property
    def confirmed(self) -> bool:
        """True when candidate pairs are confirmed in pixel space."""
        return bool(self.pixel_thresholds) and self.pixels is not None

    @property
    def candidate_distance(self) -> float:
        """The code threshold of the candidate pairs: the looser level's when pairs are confirmed in
        pixel space (`LOOSER`), else `max_distance`."""
        return self.thresholds[LOOSER[self.level]] if self.confirmed else self.max_distance

    @property
    def pixel_max_distance(self) -> float | None:
        """The pixel stage's threshold at this level (None when pairs are not confirmed)."""
        return self.pixel_thresholds[self.level] if self.confirmed else None

    def copy_distances(self, level: str | None = None) -> np.ndarray:
        """`(m,)` distances of the planted copies that `level` (default: this one) counts as duplicates."""
        return level_copies(self.copies, level or self.level)

    def pixel_copy_distances(self, level: str | None = None) -> np.ndarray:
        """`(m,)` pixel distances of the planted copies that `level` (default: this one) counts."""
        return level_copies(self.pixel_copies, level or self.level)

    def describe(self) -> str:
        """Lines for a person: the threshold, how it was found, both distributions as quantiles."""
        if self.how == "fallback":
            return "\n".join(self.notes + [f"max distance {self.max_distance:.4g} ({self.metric}, fixed)"]
                             + ([self.confirm_note] if self.confirm_note else []))
        source = "decoded codes" if self.how == "decoded" else "image files"
        lines = [
            (f"max distance {self.max_distance:.4g} ({self.metric}, level {self.level}), learned from "
             f"{self.n_items} items: {len(next(iter(self.copies.values()), []))} {source} altered "
             f"{len(self.copies)} ways, {len(self.distinct)} nearest distinct neighbours"),
            "levels: " + ", ".join(f"{lv} {t:.4g}" for lv, t in self.thresholds.items()),
            f"{'quantile':<22}" + "".join(f"{q:>10g}" for q in QUANTILES),
            f"{'near-copies (' + self.level + ')':<22}" + _row(self.copy_distances()),
            f"{'distinct images':<22}" + _row(self.distinct),
        ]
        lines += [f"  {a:<20}" + _row(d) for a, d in self.copies.items()]
        if self.confirmed:
            lines += [
                (f"confirmed in pixel space: candidate pairs within {self.candidate_distance:.4g} (the codes' level "
                 f"{LOOSER[self.level]}) are kept when their {self.pixels.describe()} lie within "
                 f"{self.pixel_max_distance:.4g} (cosine, level {self.level})"),
                "pixel levels: " + ", ".join(f"{lv} {t:.4g}" for lv, t in self.pixel_thresholds.items()),
                f"{'pixel near-copies':<22}" + _row(self.pixel_copy_distances()),
                f"{'pixel distinct':<22}" + _row(self.pixel_distinct),
            ]
        elif self.confirm_note:
            lines.append(self.confirm_note)
        return "\n".join(lines + self.notes)


QUANTILES = (0.0, 0.05, 0.5, 0.95, 1.0)


def level_copies(copies: Mapping[str, np.ndarray], level: str) -> np.ndarray:
    """`(m,)` the distances of `copies` (alteration -> distances) that `level` counts as duplicates."""
    keep = LEVELS[: LEVELS.index(level) + 1]
    parts = [np.asarray(d, np.float64) for a, d in copies.items() if ALTERATIONS.get(a, "near") in keep]
    return np.concatenate(parts) if parts else np.zeros(0)


def _row(values: np.ndarray) -> str:
    if len(values) == 0:
        return "".join(f"{'-':>10}" for _ in QUANTILES)
    return "".join(f"{v:>10.3g}" for v in np.quantile(values, QUANTILES))


# ---- the distinct images


def distinct_distances(index: Index, queries: np.ndarray, *, exclude: np.ndarray | None = None,
                       reach: float = np.inf, neighbours: int = NEIGHBOURS, gap: float = GAP) -> np.ndarray:
    """Each query's distance to its nearest *distinct* item of `index`: `(q,)` float64, the first
    half of `distinct_neighbours` (NaN for a query with no other item)."""
    return distinct_neighbours(index, queries, exclude=exclude, reach=reach, neighbours=neighbours, gap=gap)[0]


def distinct_neighbours(index: Index, queries: np.ndarray, *, exclude: np.ndarray | None = None,
                        reach: float = np.inf, neighbours: int = NEIGHBOURS,
                        gap: float = GAP) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest *distinct* item of `index`, and the distance to it.

    The set may hold copies of the query, and they must not count as distinct images. Of the query's
    nearest distances d_1 <= ... <= d_{k+1} (k = `neighbours`, fewer in a small set), a neighbour j
    is taken for a copy, with every nearer one, when d_j is within `reach` (where copies can lie) and
    d_j < `gap` x d_{j+1} (the next one is much farther); the first neighbour after the last such j
    is kept, or d_1 when there is none. So an original with a byte-identical copy and a brightened
    one keeps the distance to its nearest other picture, while a photo among several similar ones
    keeps the nearest of them.

    Args:
        index: the set searched.
        queries: `(q, d)` codes.
        exclude: `(q,)` ids of the queries themselves in `index` (not their own neighbours), or None.
        reach: the farthest a copy can lie (e.g. the near level's reach of planted copies).
        neighbours: k.
        gap: the ratio below which the next neighbour is "much farther".

    Returns:
        `(q,)` float64 distances (NaN for a query with no other item) and `(q,)` int64 ids of those
        items in `index` (-1 for none).
    """
    k = min(len(index), neighbours + 1 + (exclude is not None))
    out, found = np.full(len(queries), np.nan), np.full(len(queries), -1, np.int64)
    if k == 0 or len(queries) == 0:
        return out, found
    d, ids = index.search(queries, k)
    for row, (d_row, id_row) in enumerate(zip(d, ids)):
        keep = id_row >= 0
        if exclude is not None:
            keep &= id_row != exclude[row]
        x = np.maximum(d_row[keep][:neighbours + 1].astype(np.float64), 0.0)
        if len(x) == 0:
            continue
        copies = (x[:-1] <= reach) & (x[:-1] < gap * x[1:])
        j = int(np.flatnonzero(copies)[-1]) + 1 if copies.any() else 0
        out[row], found[row] = x[j], id_row[keep][j]
    return out, found


# ---- the threshold


def choose_thresholds(copies: Mapping[str, np.ndarray], distinct: np.ndarray) -> dict[str, float]:
    """Each level's threshold from the planted copies' distances and the distinct images' distances.

    exact and near: the `REACH_QUANTILE` of the level's copy distances times `MARGIN`, but at most
    `CAP` times the `FLOOR_QUANTILE` of the distinct distances. similar: `SIMILAR_TOWARD` of the way
    (in log distance) from the near reach to the `SIMILAR_QUANTILE` of the distinct distances, and
    never below near. The levels come out ordered: exact <= near <= similar.

    Args:
        copies: alteration -> `(m,)` distances of copies to their originals (names of `ALTERATIONS`).
        distinct: `(k,)` distances to the nearest distinct item (NaN entries are ignored).

    Returns:
        `{"exact": t, "near": t, "similar": t}`.

    Raises:
        FacespaceError: no copy distances or no distinct distances.

    Example:
        >>> copies = {"jpeg95": np.full(10, 1e-4), "trim2": np.full(10, 1e-2)}
        >>> t = choose_thresholds(copies, np.linspace(0.2, 0.5, 50))
        >>> [round(t[lv], 5) for lv in LEVELS]
        [0.00015, 0.015, 0.1105]
    """
    distinct = np.asarray(distinct, np.float64)
    distinct = distinct[np.isfinite(distinct)]
    if len(distinct) == 0 or not any(len(d) for d in copies.values()):
        raise FacespaceError("a threshold needs distances of planted copies and of distinct images; got none")
    floor = float(np.quantile(distinct, FLOOR_QUANTILE))
    cap = CAP * floor
    exact = min(copy_reach(copies, "exact"), cap)
    near_reach = copy_reach(copies, "near")
    near = max(exact, min(near_reach, cap))
    top = float(np.quantile(distinct, SIMILAR_QUANTILE))
    lo = max(near_reach, 1e-12)
    similar = float(np.exp((1 - SIMILAR_TOWARD) * np.log(lo) + SIMILAR_TOWARD * np.log(max(top, lo))))
    return {"exact": exact, "near": near, "similar": max(near, min(similar, max(top, near)))}


def copy_reach(copies: Mapping[str, np.ndarray], level: str = "near") -> float:
    """How far the copies a level counts reach: the `REACH_QUANTILE` of their distances times `MARGIN`
    (0 without any); "near" counts the "exact" ones too, so its reach is never the shorter."""
    d = level_copies(copies, level)
    d = d[np.isfinite(d)]
    return float(np.quantile(d, REACH_QUANTILE)) * MARGIN if len(d) else 0.0


def fallback_max_distance(metric: str, codes: np.ndarray | None = None) -> float:
    """The fixed threshold of a set too small to learn from: `FALLBACK_COSINE` in cosine distance;
    in l2, the same angle at the codes' median length (`sqrt(2 FALLBACK_COSINE) x median |z|`)."""
    if metric == "cosine":
        return FALLBACK_COSINE
    if metric == "l2":
        norm = float(np.median(np.linalg.norm(codes, axis=1))) if codes is not None and len(codes) else 1.0
        return float(np.sqrt(2 * FALLBACK_COSINE) * norm)
    raise IndexingError(f"no duplicate threshold can be learned in {metric} distance (a similarity, not a distance); "
                        f"give --max-distance, or build the index with --metric cosine or l2")

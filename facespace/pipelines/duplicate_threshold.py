"""How far apart two codes may be and still be copies of one image, learned from the set itself.

A distance between codes means nothing until it is compared with the distances of the set it came
from: a re-saved JPEG of a 32-pixel studio portrait can lie farther from its original than two
different photos of LFW. So `learn_max_distance` measures both on the user's own set:

1. **near-copies**: a sample of the set's own image files is altered (`ALTERATIONS`: JPEG
   re-encoding at several qualities, resizes, small crops, brightness shifts), the copies are read
   and encoded exactly as the originals are (same crop, same model), and each copy's distance to
   its original is kept, per alteration;
2. **distinct images**: each sampled item's distance to its nearest *distinct* item of the set. The
   set may hold the very copies being looked for, so nearest neighbours that lie within the copies'
   reach and are followed by a much farther one (`GAP`) are taken for copies and skipped
   (`distinct_distances`);
3. **the threshold** (`choose_thresholds`): the reach of the level's copies (`REACH_QUANTILE` of
   their distances, times `MARGIN`), but never past `CAP` times the `FLOOR_QUANTILE` of the distinct
   distances, so distinct images stay apart even where the alterations reach farther. The "similar"
   level lies between the near-copies and the distinct images, toward the distinct side.

The constants were picked on a development set (LFW people that the benchmark does not use; see
benchmarks/duplicates.py --split dev) and are not tuned on the benchmark's own sets.

Where the images are gone but the model can decode (an autoencoder, raw pixels), the copies are
made from decoded codes at the model's resolution; without either, `learn_max_distance` says what to
do. A set under `MIN_IMAGES` items gets the fixed `fallback_max_distance` of its metric.

Example:
    >>> import facespace as fs                                              # doctest: +SKIP
    >>> learned = learn_max_distance("photos.index", level="near")          # doctest: +SKIP
    >>> print(learned.describe())                                           # doctest: +SKIP
    >>> groups = fs.find_duplicates("photos.index", learned.max_distance)   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from facespace.data.alterations import alter_image, as_picture, open_upright, png_bytes, upright_size
from facespace.data.crops import RECORDED, crop_name, resolve_crop
from facespace.data.images import load_images, read_image
from facespace.data.inputs import ALIGN_MAX_SIDE, align_arrays
from facespace.errors import FacespaceError
from facespace.index.binding import check_model, index_model
from facespace.index.index import Index, IndexingError
from facespace.models.registry import resolve_model
from facespace.people.distances import pair_distances
from facespace.pipelines.codes import encode
from facespace.pipelines.retrieval import as_index
from facespace.protocol import Encoder, has_decoder, is_aligning, model_kind

LEVELS = ("exact", "near", "similar")
# what each level counts as a duplicate (the CLI's --level help is built from these)
LEVEL_MEANINGS = {
    "exact": "byte- or pixel-identical files and re-encodes of one image (JPEG quality 85 or more)",
    "near": ("(default) also edited copies of one image: JPEG quality down to 50, resized to 50-100 %, "
             "up to 2 % cropped off the edges, brightness +-10 %"),
    "similar": ("looser: also near shots of one scene (photos taken seconds apart); the threshold lies "
                "between the near-copies and the set's distinct images, toward the distinct side"),
}
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

    def copy_distances(self, level: str | None = None) -> np.ndarray:
        """`(m,)` distances of the planted copies that `level` (default: this one) counts as duplicates."""
        keep = LEVELS[: LEVELS.index(level or self.level) + 1]
        parts = [d for a, d in self.copies.items() if ALTERATIONS.get(a, "near") in keep]
        return np.concatenate(parts) if parts else np.zeros(0)

    def describe(self) -> str:
        """Lines for a person: the threshold, how it was found, both distributions as quantiles."""
        if self.how == "fallback":
            return "\n".join(self.notes + [f"max distance {self.max_distance:.4g} ({self.metric}, fixed)"])
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
        return "\n".join(lines + self.notes)


QUANTILES = (0.0, 0.05, 0.5, 0.95, 1.0)


def _row(values: np.ndarray) -> str:
    if len(values) == 0:
        return "".join(f"{'-':>10}" for _ in QUANTILES)
    return "".join(f"{v:>10.3g}" for v in np.quantile(values, QUANTILES))


# ---- the near-copies


def encode_files(model: Encoder, sources: Sequence[Any], *, crop: Any = RECORDED, batch_size: int = 256) -> np.ndarray:
    """Codes `(n, d)` float32 of image files (paths or encoded bytes), read as `encode_sources` reads
    a folder: the model's size and channels, `crop` (a model that aligns its own faces aligns them)."""
    if is_aligning(model):
        x = align_arrays(model, (read_image(s, max_side=ALIGN_MAX_SIDE) for s in sources), crop=crop)
    else:
        size, _, channels = model.image_shape
        x = load_images(list(sources), size=size, crop=resolve_crop(model, crop), grayscale=channels == 1)
    return encode(model, x, batch_size=batch_size)


def copy_distances(
    model: Encoder,
    images: Sequence[Any],
    *,
    crop: Any = RECORDED,
    metric: str = "cosine",
    alterations: Sequence[str] = tuple(ALTERATIONS),
    batch_size: int = 256,
    originals: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Distances from each image's code to the codes of its altered copies.

    Args:
        model: the model that made (or makes) the set's codes.
        images: `m` image paths, or `m` Pillow images (decoded codes: give `crop=None`). A photo
            larger than `facespace.data.alterations.MAX_SIDE` is shrunk first, and its original encoded from the shrunk one.
        crop: how the set's files were cut (as `encode_sources`).
        metric: "cosine" or "l2".
        alterations: names from `ALTERATIONS`.
        originals: `(m, d)` codes of the originals, if already encoded the same way.

    Returns:
        `{alteration: (m,) float64 distances}`.
    """
    pictures = [open_upright(p) for p in images]
    if originals is None:  # a file read whole unless it had to be shrunk; a picture as a PNG
        sources = [p if not isinstance(p, Image.Image) and pic.size == upright_size(p) else png_bytes(pic)
                   for p, pic in zip(images, pictures)]
        originals = encode_files(model, sources, crop=crop, batch_size=batch_size)
    return {a: pair_distances(originals, encode_files(model, [alter_image(p, a) for p in pictures], crop=crop,
                                                      batch_size=batch_size), metric=metric)
            for a in alterations}


# ---- the distinct images


def distinct_distances(index: Index, queries: np.ndarray, *, exclude: np.ndarray | None = None,
                       reach: float = np.inf, neighbours: int = NEIGHBOURS, gap: float = GAP) -> np.ndarray:
    """Each query's distance to its nearest *distinct* item of `index`.

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
        `(q,)` float64 distances (NaN for a query with no other item).
    """
    k = min(len(index), neighbours + 1 + (exclude is not None))
    if k == 0 or len(queries) == 0:
        return np.full(len(queries), np.nan)
    d, ids = index.search(queries, k)
    out = np.full(len(queries), np.nan)
    for row, (d_row, id_row) in enumerate(zip(d, ids)):
        keep = id_row >= 0
        if exclude is not None:
            keep &= id_row != exclude[row]
        x = np.maximum(d_row[keep][:neighbours + 1].astype(np.float64), 0.0)
        if len(x) == 0:
            continue
        copies = (x[:-1] <= reach) & (x[:-1] < gap * x[1:])
        out[row] = x[int(np.flatnonzero(copies)[-1]) + 1] if copies.any() else x[0]
    return out


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
    keep = LEVELS[: LEVELS.index(level) + 1]
    parts = [np.asarray(d, np.float64) for a, d in copies.items() if ALTERATIONS.get(a, "near") in keep and len(d)]
    return float(np.quantile(np.concatenate(parts), REACH_QUANTILE)) * MARGIN if parts else 0.0


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


# ---- learning from a set


def learn_max_distance(
    index: Any,
    *,
    level: str = "near",
    against: Any = None,
    model: Encoder | str | None = None,
    crop: Any = RECORDED,
    sample: int = SAMPLE,
    seed: int = 0,
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
) -> LearnedThreshold:
    """The largest distance that counts as a duplicate in this set, learned from the set itself.

    Args:
        index: an `Index`, an index file or exported codes (`as_index`): the set searched for
            duplicates (within itself, or, with `against`, against a reference set).
        level: "exact", "near" or "similar" (see `LEVEL_MEANINGS`).
        against: the reference set, as `find_duplicates` takes it; the copies are made from images
            of both sets, the distinct distances are those from the set to the reference set.
        model: the model of the codes (default: the one the index records).
        crop: how the set's files were cut when they were encoded ("recorded": the model's own);
            when the stored codes show another crop ("none", "lfw", "tight"), that one is used.
        sample: images altered.
        seed: the sample's seed.
        batch_size: images encoded at a time.
        progress: called with a line of text as each stage starts.

    Returns:
        A `LearnedThreshold`; `max_distance` is the threshold of `level`.

    Raises:
        FacespaceError: an unknown level; IndexingError: an ip index, a set with no model to
            encode copies with, images that are gone and a model that cannot decode.
    """
    if level not in LEVELS:
        raise FacespaceError(f"unknown level {level!r}; expected one of: {', '.join(LEVELS)}")
    say = progress or (lambda line: None)
    index = as_index(index)
    ref = as_index(against, metric=index.metric) if against is not None else None
    metric = index.metric
    if metric not in ("cosine", "l2"):
        fallback_max_distance(metric)  # raises, saying what to do
    sets = [index] if ref is None else [index, ref]
    n_items = sum(len(s) for s in sets)
    codes = [s.reconstruct(s.ids) for s in sets]
    if min(len(s) for s in sets) < 1 or n_items < MIN_IMAGES:
        t = fallback_max_distance(metric, np.concatenate(codes))
        note = (f"{n_items} item(s) are too few to learn a duplicate threshold from (auto needs at least "
                f"{MIN_IMAGES}); using the fixed level for {metric} distance instead")
        return LearnedThreshold(t, level, metric, "fallback", {lv: t for lv in LEVELS}, n_items=n_items, notes=[note])
    rng = np.random.default_rng(seed)
    net = _model_of(sets, model)
    say(f"learning the threshold: altering up to {sample} of the images {len(ALTERATIONS)} ways, encoding the copies")
    copies, how, notes = _copies_of(net, sets, codes, metric=metric, crop=crop, sample=sample, rng=rng,
                                    batch_size=batch_size)
    distinct = _distinct_of(index, ref, codes, rng, reach=copy_reach(copies, "near"))
    thresholds = choose_thresholds(copies, distinct)
    t = thresholds[level]
    learned = LearnedThreshold(t, level, metric, how, thresholds, copies, distinct, n_items, notes)
    missed = [a for a, d in copies.items() if ALTERATIONS[a] in LEVELS[: LEVELS.index(level) + 1]
              and float(np.median(d)) > t]
    if missed:
        spec = resolve_crop(net, crop) if how == "learned" else None
        lfw_only = isinstance(spec, str) and spec.startswith("lfw")  # cut from 250x250 originals only
        learned.notes.append(
            f"most copies made by {', '.join(missed)} lie farther than {t:.4g}: at this level they are not "
            f"found, as distinct images of this set are as close"
            + (f" (crop {crop_name(spec)} cuts 250x250 LFW originals only, so a resized copy is framed "
               f"otherwise; --crop none finds resized copies)" if lfw_only and any(a.startswith("resize") for a in missed)
               else ""))
    return learned


def _distinct_of(index: Index, ref: Index | None, codes: list[np.ndarray], rng: np.random.Generator, *,
                 reach: float) -> np.ndarray:
    """Nearest-distinct distances: of the set's items within the set, or to the reference set."""
    ids = index.ids
    take = rng.choice(len(ids), min(len(ids), DISTINCT_SAMPLE), replace=False)
    if ref is None:
        return distinct_distances(index, codes[0][take], exclude=ids[take], reach=reach)
    found = distinct_distances(ref, codes[0][take], reach=reach)
    rids = ref.ids
    within = rng.choice(len(rids), min(len(rids), DISTINCT_SAMPLE), replace=False)
    return np.concatenate([found, distinct_distances(ref, codes[1][within], exclude=rids[within], reach=reach)])


def _model_of(sets: list[Index], model: Encoder | str | None) -> Encoder:
    if model is not None:
        return resolve_model(model)
    recorded = next((s for s in sets if s.model is not None), None)
    if recorded is None:
        raise IndexingError(
            "these codes record no model, so no copies can be encoded to learn a threshold from; "
            "give the model (--model PATH), or a fixed --max-distance NUMBER")
    try:
        return index_model(recorded)
    except IndexingError as e:
        raise IndexingError(f"{e} (a threshold is learned by encoding altered copies with it), or give a fixed "
                            f"--max-distance NUMBER") from None


def _copies_of(net: Encoder, sets: list[Index], codes: list[np.ndarray], *, metric: str, crop: Any, sample: int,
               rng: np.random.Generator, batch_size: int) -> tuple[dict[str, np.ndarray], str, list[str]]:
    """Copy distances from the sets' image files, else from their decoded codes."""
    for s in sets:
        if s.model is not None:
            check_model(s, net)
    rows = [(k, i) for k, s in enumerate(sets) for i in range(len(s))]
    metas = [s.get_metadata(s.ids) for s in sets]
    picked, missing = [], None
    for j in rng.permutation(len(rows)):  # a random sample of the images still there
        k, i = rows[j]
        if _is_file(metas[k][i].get("path")):
            picked.append((k, i))
            if len(picked) == sample:
                break
        elif missing is None:
            missing = metas[k][i].get("path")
    notes: list[str] = []
    if len(picked) >= min(sample, MIN_IMAGES):
        paths = [metas[k][i]["path"] for k, i in picked]
        stored = np.stack([codes[k][i] for k, i in picked])
        use = _matching_crop(net, paths[:8], stored[:8], crop, batch_size)
        if use is None:
            notes.append("the set's codes are not what its files give now with any crop (changed files, or "
                         "another model?); the copies are compared with the files' codes as they are now")
            use = crop
        return copy_distances(net, paths, crop=use, metric=metric, batch_size=batch_size), "learned", notes
    decode = _decoder(net)
    if decode is None:
        raise IndexingError(
            f"only {len(picked)} of the set's {len(rows)} images can be read (e.g. {missing!r} is gone) and its "
            f"model ({model_kind(net)}) cannot turn codes back into images, so no threshold can be learned from "
            f"this set: restore the images at the paths the index records, or give a fixed --max-distance NUMBER")
    picked = [rows[j] for j in rng.permutation(len(rows))[:sample]]
    pictures = [as_picture(x) for x in decode(np.stack([codes[k][i] for k, i in picked]))]
    notes.append(f"the images are gone (e.g. {missing!r}): the copies were made from codes decoded by the "
                 f"model, at its {net.image_shape[0]}x{net.image_shape[1]} pixels")
    return copy_distances(net, pictures, crop=None, metric=metric, batch_size=batch_size), "decoded", notes


def _is_file(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.path.isfile(path)


def _matching_crop(net: Encoder, paths: list[str], stored: np.ndarray, crop: Any, batch_size: int):
    """The crop (of `crop`, then "recorded", "none", "lfw", "tight") whose codes of `paths` are the
    stored ones; None when none is."""
    tried = []
    for c in (crop, RECORDED, "none", "lfw", "tight"):
        try:
            spec = resolve_crop(net, c)
        except FacespaceError:
            continue
        if spec in tried:
            continue
        tried.append(spec)
        try:
            z = encode_files(net, paths, crop=c, batch_size=batch_size)
        except FacespaceError:
            continue
        if float(np.max(pair_distances(z, stored, metric="cosine"))) < 1e-4:
            return c
    return None


def _decoder(net: Encoder) -> Callable[[np.ndarray], np.ndarray] | None:
    """codes -> `(n, H, W, C)` images in [0, 1], or None for a model that cannot decode."""
    if has_decoder(net):
        return lambda z: np.clip(net.decode(z), 0.0, 1.0)
    if model_kind(net) == "pixels":  # the raw-pixel baseline: the code is the image
        return lambda z: np.clip(np.asarray(z, np.float32).reshape(len(z), *net.image_shape), 0.0, 1.0)
    return None

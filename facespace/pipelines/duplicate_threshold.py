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
   (`facespace.pipelines.duplicate_levels.distinct_distances`);
3. **the threshold** (`facespace.pipelines.duplicate_levels.choose_thresholds`): the reach of the level's copies (`REACH_QUANTILE` of
   their distances, times `MARGIN`), but never past `CAP` times the `FLOOR_QUANTILE` of the distinct
   distances, so distinct images stay apart even where the alterations reach farther. The "similar"
   level lies between the near-copies and the distinct images, toward the distinct side.

The constants were picked on a development set (LFW people that the benchmark does not use; see
benchmarks/duplicates.py --split dev) and are not tuned on the benchmark's own sets.

With the image files at hand, the same copies and the same nearest distinct pairs are measured
again in pixel space (`facespace.pipelines.duplicate_confirm.PixelReader`), and `choose_thresholds`
places a pixel threshold too: pairs found in the codes at the next looser level are then confirmed by
their pixels (`facespace.pipelines.duplicate_confirm.find_confirmed_duplicates`).

Where the images are gone but the model can decode (an autoencoder, raw pixels), the copies are
made from decoded codes at the model's resolution, and there are no files to confirm pairs with;
without either, `learn_max_distance` says what to do. A set under `MIN_IMAGES` items gets the fixed
`fallback_max_distance` of its metric.

Example:
    >>> import facespace as fs                                              # doctest: +SKIP
    >>> learned = learn_max_distance("photos.index", level="near")          # doctest: +SKIP
    >>> print(learned.describe())                                           # doctest: +SKIP
    >>> groups, check = find_confirmed_duplicates("photos.index", learned)   # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

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
from facespace.pipelines.duplicate_confirm import PixelReader, pair_pixel_distances
from facespace.pipelines.duplicate_levels import (
    ALTERATIONS, DISTINCT_SAMPLE, LEVELS, MIN_IMAGES, SAMPLE, LearnedThreshold, choose_thresholds, copy_reach,
    distinct_neighbours, fallback_max_distance)
from facespace.pipelines.retrieval import as_index
from facespace.protocol import Encoder, has_decoder, is_aligning, model_kind

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
    def read(sources: Sequence[Any]) -> np.ndarray:
        return encode_files(model, sources, crop=crop, batch_size=batch_size)

    return altered_distances([(read, metric)], images, alterations=alterations, originals=[originals])[0]


def altered_distances(
    readers: Sequence[tuple[Callable[[Sequence[Any]], np.ndarray], str]],
    images: Sequence[Any],
    *,
    alterations: Sequence[str] = tuple(ALTERATIONS),
    originals: Sequence[np.ndarray | None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """`copy_distances` for several readers of the same copies (each copy is made once).

    Args:
        readers: `(read, metric)` pairs: `read(sources) -> (n, d)` codes of files (paths or bytes).
        images: as `copy_distances` takes them.
        alterations: names from `ALTERATIONS`.
        originals: per reader, the originals' codes if already read, or None.

    Returns:
        Per reader, `{alteration: (m,) float64 distances}`.
    """
    pictures = [open_upright(p) for p in images]
    # a file read whole unless it had to be shrunk; a picture as a PNG
    sources = [p if not isinstance(p, Image.Image) and pic.size == upright_size(p) else png_bytes(pic)
               for p, pic in zip(images, pictures)]
    given = list(originals) if originals is not None else [None] * len(readers)
    base = [z if z is not None else read(sources) for (read, _), z in zip(readers, given)]
    out: list[dict[str, np.ndarray]] = [{} for _ in readers]
    for a in alterations:
        files = [alter_image(p, a) for p in pictures]
        for found, (read, metric), z in zip(out, readers, base):
            found[a] = pair_distances(z, read(files), metric=metric)
    return out


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
    confirm: bool = True,
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
        confirm: also learn the pixel stage that confirms candidate pairs (possible when the images
            can be read; `learned.confirmed` says whether it was, `learned.confirm_note` why not).
        progress: called with a line of text as each stage starts.

    Returns:
        A `LearnedThreshold`; `max_distance` is the codes' threshold of `level` (used alone when
        pairs are not confirmed in pixel space).

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
        return LearnedThreshold(t, level, metric, "fallback", {lv: t for lv in LEVELS}, n_items=n_items, notes=[note],
                                confirm_note=f"pairs are not confirmed in pixel space: {note.split(';')[0]}")
    rng = np.random.default_rng(seed)
    net = _model_of(sets, model)
    say(f"learning the threshold: altering up to {sample} of the images {len(ALTERATIONS)} ways, encoding the copies"
        + (" (and reading them as pixels)" if confirm else ""))
    copies, how, notes, reader, pixel_copies = _copies_of(net, sets, codes, metric=metric, crop=crop, sample=sample,
                                                          rng=rng, batch_size=batch_size, confirm=confirm)
    distinct, a_paths, b_paths = _distinct_of(index, ref, codes, rng, reach=copy_reach(copies, "near"))
    thresholds = choose_thresholds(copies, distinct)
    t = thresholds[level]
    learned = LearnedThreshold(t, level, metric, how, thresholds, copies, distinct, n_items, notes)
    if reader is not None:
        say("learning the pixel threshold: reading the nearest distinct pairs as pixels")
        _add_pixel_stage(learned, reader, pixel_copies, pair_pixel_distances(reader, a_paths, b_paths))
    else:
        learned.confirm_note = ("pairs are not confirmed in pixel space (--no-confirm): the codes alone decide"
                                if not confirm else "pairs are not confirmed in pixel space: the images are gone, "
                                "so the codes alone decide")
    reach = learned.candidate_distance
    missed = [a for a, d in copies.items() if ALTERATIONS[a] in LEVELS[: LEVELS.index(level) + 1]
              and (float(np.median(d)) > reach or (learned.confirmed and float(np.median(
                  learned.pixel_copies[a])) > learned.pixel_max_distance))]
    if missed:
        spec = resolve_crop(net, crop) if how == "learned" else None
        lfw_only = isinstance(spec, str) and spec.startswith("lfw")  # cut from 250x250 originals only
        learned.notes.append(
            f"most copies made by {', '.join(missed)} lie farther than "
            + ("the thresholds" if learned.confirmed else f"{t:.4g}")
            + ": at this level they are not found, as distinct images of this set are as close"
            + (f" (crop {crop_name(spec)} cuts 250x250 LFW originals only, so a resized copy is framed "
               f"otherwise; --crop none finds resized copies)" if lfw_only and any(a.startswith("resize") for a in missed)
               else ""))
    return learned


def _add_pixel_stage(learned: LearnedThreshold, reader: PixelReader, copies: dict[str, np.ndarray],
                     distinct: np.ndarray) -> None:
    """The pixel thresholds, from the copies' and the nearest distinct pairs' pixel distances."""
    if not np.isfinite(distinct).any():
        learned.confirm_note = ("pairs are not confirmed in pixel space: none of the nearest distinct pairs "
                                "could be read as pixels")
        return
    learned.pixels, learned.pixel_copies, learned.pixel_distinct = reader, copies, distinct
    learned.pixel_thresholds = choose_thresholds(copies, distinct)


def _distinct_of(index: Index, ref: Index | None, codes: list[np.ndarray], rng: np.random.Generator, *,
                 reach: float) -> tuple[np.ndarray, list[Any], list[Any]]:
    """Nearest-distinct distances, of the set's items within the set or to the reference set, and
    the two paths of each such pair (None where unknown)."""
    ids = index.ids
    take = rng.choice(len(ids), min(len(ids), DISTINCT_SAMPLE), replace=False)
    if ref is None:
        d, nb = distinct_neighbours(index, codes[0][take], exclude=ids[take], reach=reach)
        return d, _paths(index, ids[take]), _paths(index, nb)
    d, nb = distinct_neighbours(ref, codes[0][take], reach=reach)
    rids = ref.ids
    within = rng.choice(len(rids), min(len(rids), DISTINCT_SAMPLE), replace=False)
    d2, nb2 = distinct_neighbours(ref, codes[1][within], exclude=rids[within], reach=reach)
    return (np.concatenate([d, d2]), _paths(index, ids[take]) + _paths(ref, rids[within]),
            _paths(ref, nb) + _paths(ref, nb2))


def _paths(index: Index, ids: np.ndarray) -> list[Any]:
    """The recorded path of each id (None for -1 or an item without one)."""
    ids = np.asarray(ids)
    found = index.get_metadata(ids[ids >= 0]) if (ids >= 0).any() else []
    it = iter(found)
    return [next(it).get("path") if i >= 0 else None for i in ids]


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
               rng: np.random.Generator, batch_size: int, confirm: bool):
    """Copy distances from the sets' image files, else from their decoded codes: `(copies, how, notes,
    reader, pixel copies)`, the last two for the pixel stage (None and {} without files or `confirm`)."""
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
        if not confirm:
            return copy_distances(net, paths, crop=use, metric=metric, batch_size=batch_size), "learned", notes, None, {}
        reader = PixelReader.of(net, use)
        copies, pixel_copies = altered_distances(
            [(lambda s: encode_files(net, s, crop=use, batch_size=batch_size), metric), (reader.codes, "cosine")],
            paths)
        return copies, "learned", notes, reader, pixel_copies
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
    return copy_distances(net, pictures, crop=None, metric=metric, batch_size=batch_size), "decoded", notes, None, {}


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

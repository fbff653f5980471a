"""Search by image: images -> the index's model -> codes -> nearest stored faces; near-duplicates.

Example:
    >>> import facespace as fs                                              # doctest: +SKIP
    >>> index = fs.build_index("runs/pca/best.safetensors", "embedded", backend="hnsw")
    >>> hits = fs.search(index, ["me.jpg"], k=5)          # one list of 5 dicts per query
    >>> hits[0][0]["path"], hits[0][0]["distance"]
    >>> groups = fs.find_duplicates(index, max_distance=0.01)   # lists of ids
    >>> pairs = fs.find_duplicates(new_index, against=reference_index, max_distance=0.01)
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from facespace.index.binding import check_model, index_model
from facespace.models.registry import resolve_model
from facespace.index.index import Index, IndexingError
from facespace.protocol import Autoencoder, Encoder


def _as_index(index: Index | str | os.PathLike) -> Index:
    return Index.load(index) if isinstance(index, (str, os.PathLike)) else index


def as_index(source: Any, *, metric: str = "cosine") -> Index:
    """An exact `Index` over a set of codes, or the index itself.

    Args:
        source: an `Index`; the path of a saved index; the path of exported codes (`.npy`,
            `.csv`, `.parquet`, see `facespace.pipelines.export.write`); an `ExportedCodes`; or `(n, d)` codes.
        metric: the metric of an index made here (a given index keeps its own).

    Returns:
        The index; one made from codes keeps their paths and names as metadata and their model
        record as `Index.model`, and codes given as an array get ids 0..n-1 (their row numbers).
    """
    if isinstance(source, Index):
        return source
    if isinstance(source, (str, os.PathLike)):
        from facespace.pipelines.export.formats import is_codes_file
        from facespace.pipelines.export.read import load_codes

        if not is_codes_file(source):
            return Index.load(source)
        source = load_codes(source)
    if hasattr(source, "codes") and hasattr(source, "metadata"):  # ExportedCodes
        codes = np.asarray(source.codes)
        index = Index(int(codes.shape[1]) if codes.ndim == 2 else 1, metric=metric)
        index.add(codes, metadata=source.metadata())
        index.model = source.model
        return index
    codes = np.asarray(source)
    if codes.ndim != 2:
        raise IndexingError(f"codes must be a 2-d array (n, d); got shape {codes.shape}")
    index = Index(int(codes.shape[1]), metric=metric)
    index.add(codes)
    return index


def same_model(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """False only when two model records (`Index.model`) are both known and name different models."""
    if a is None or b is None:
        return True
    return any(a.get(key) and a.get(key) == b.get(key) for key in ("hash", "weights_hash"))


class DuplicatePair(NamedTuple):
    """A near-duplicate across two sets: `new` (an id of the searched set), `ref` (an id of the
    reference set; a row number for codes given as an array) and their `distance`."""

    new: int
    ref: int
    distance: float


def query_codes(index: Index, queries: Any, *, model: Encoder | None = None, batch_size: int = 256) -> np.ndarray:
    """`(n, d)` float32 codes of `queries` for `index`.

    Args:
        index: the index to search.
        queries: `(n, d)` codes (searched as they are), `(n, H, W, C)` images, a FaceSet, or
            image paths; images go through `model`, which must be the index's model.
        model: the model (or checkpoint path); default: the checkpoint recorded in the index.
    """
    if isinstance(queries, np.ndarray) and queries.ndim == 2:
        return queries
    model = index_model(index) if model is None else resolve_model(model)
    check_model(index, model)
    from facespace.pipelines.codes import encode

    return encode(model, queries, batch_size=batch_size)


def search(
    index: Index | str | os.PathLike,
    queries: Any,
    k: int = 10,
    *,
    model: Encoder | str | None = None,
    batch_size: int = 256,
) -> list[list[dict[str, Any]]]:
    """The `k` stored faces nearest to each query.

    Args:
        index: an `Index` or the path of a saved one.
        queries: image paths, `(n, H, W, C)` float32 images in [0, 1], a FaceSet, or `(n, d)` codes.
        k: results per query; at most the number of items in the index.
        model: the index's model (default: loaded from the checkpoint path the index records);
            any other model is refused.
        batch_size: images encoded at a time.

    Returns:
        One list per query of k dicts, nearest first: `{"rank", "id", "distance", **metadata}`
        (metadata holds "path" and "name" for indexes made by `build_index`).

    Raises:
        IndexingError: empty index, k larger than the index, another model, bad codes.
        DataError: a query image that cannot be read.
    """
    index = _as_index(index)
    if len(index) == 0:
        raise IndexingError("the index is empty; add images with `facespace index add` first")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise IndexingError(f"k must be a positive integer; got {k!r}")
    if k > len(index):
        raise IndexingError(f"k={k} is larger than the index ({len(index)} items); ask for k <= {len(index)}")
    codes = query_codes(index, queries, model=model, batch_size=batch_size)
    distances, ids = index.search(codes, int(k))
    results = []
    for d_row, id_row in zip(distances, ids):
        keep = id_row >= 0
        metas = index.get_metadata(id_row[keep])
        results.append(
            [
                {"rank": r + 1, "id": int(i), "distance": float(d), **m}
                for r, (i, d, m) in enumerate(zip(id_row[keep], d_row[keep], metas))
            ]
        )
    return results


# a second look at candidate pairs: (ids of the searched set, ids of the other set or the same one,
# their distances), each (p,), -> (p,) bool, True for the pairs that are duplicates
PairCheck = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def find_duplicates(
    index: Any, max_distance: float, *, k: int = 16, against: Any = None, keep: PairCheck | None = None
) -> list[list[int]] | list[DuplicatePair]:
    """Near-duplicates within one set (groups), or of a new set against a reference set (pairs).

    Within one set: groups are connected components of "distance <= max_distance"; two items
    are in one group when a chain of items links them, each step within `max_distance` (in the
    index's metric; see `Index`). Uses the index's own backend, so an approximate backend may
    miss a few links.

    Across two sets (`against` given): every pair (new item, reference item) within
    `max_distance`, searched in the reference set's index.

    Args:
        index: an `Index`, the path of a saved one, or exported codes (see `as_index`).
        max_distance: the largest distance that still counts as a duplicate, >= 0. No one number
            fits every set: `facespace.pipelines.duplicate_threshold.learn_max_distance` learns it
            from the set itself (what `facespace index duplicates` does by default).
        k: neighbours asked for first; doubled for items that still have more within reach.
        against: the reference set: an `Index`, an index file, exported codes (a file or an
            `ExportedCodes`) or `(m, d)` codes. Both sets must hold codes of one model, compared
            in one metric (the reference index's; codes take the metric of `index`).
        keep: a second look at the pairs within `max_distance` (e.g. in pixel space,
            `facespace.pipelines.duplicate_confirm`): called once with the candidate pairs (each
            within-set pair once, lower id first), it returns which are duplicates; only those
            link groups or are returned.

    Returns:
        Without `against`: lists of ids (each sorted, at least two long), largest groups first.
        With `against`: `DuplicatePair(new, ref, distance)`s, nearest first.

    Raises:
        IndexingError: a negative or non-finite `max_distance`; sets of different code sizes,
            metrics or models.

    Example:
        >>> new = Index(2, metric="l2"); _ = new.add(np.array([[0, 0], [5, 5]], np.float32))
        >>> find_duplicates(new, 0.1, against=np.array([[0, 0.05], [9, 9]], np.float32))
        [DuplicatePair(new=0, ref=0, distance=0.05000000074505806)]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if max_distance is None or not np.isfinite(max_distance) or max_distance < 0:
        raise IndexingError(f"max_distance must be a finite number >= 0; got {max_distance!r}")
    index = as_index(index)
    if against is not None:
        return _duplicates_across(index, as_index(against, metric=index.metric), float(max_distance), k, keep)
    ids = np.sort(index.ids)
    n = len(ids)
    if n < 2:
        return []
    vectors = index.reconstruct(ids)
    src, dst, dist = [], [], []
    todo = np.arange(n)
    kk = min(max(int(k), 2), n)
    while len(todo):
        d, nb = index.search(vectors[todo], kk)
        close = (d <= max_distance) & (nb >= 0)
        rows, cols = np.nonzero(close)
        src.append(todo[rows])
        dst.append(np.searchsorted(ids, nb[rows, cols]))
        dist.append(d[rows, cols])
        if kk >= n:
            break
        todo = todo[close[:, -1]]  # the k-th neighbour is still close: there may be more
        kk = min(2 * kk, n)
    src, dst, dist = np.concatenate(src), np.concatenate(dst), np.concatenate(dist)
    if keep is not None:  # each pair once, lower row first, then the second look
        src, dst, dist = _each_pair_once(src, dst, dist)
        ok = np.asarray(keep(ids[src], ids[dst], dist), bool)
        src, dst = src[ok], dst[ok]
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    n_groups, label = connected_components(graph, directed=False)
    sizes = np.bincount(label, minlength=n_groups)
    groups = [sorted(ids[label == g].tolist()) for g in np.flatnonzero(sizes >= 2)]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def _each_pair_once(src: np.ndarray, dst: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links `src -> dst` (rows) as unordered pairs, each once, lower row first, without self-links."""
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    other = a != b
    a, b, dist = a[other], b[other], dist[other]
    _, first = np.unique(np.stack([a, b], axis=1), axis=0, return_index=True)
    return a[first], b[first], dist[first].astype(np.float64)


def _duplicates_across(new: Index, ref: Index, max_distance: float, k: int,
                       keep: PairCheck | None = None) -> list[DuplicatePair]:
    if ref.metric != new.metric:
        raise IndexingError(
            f"the new set is compared in {new.metric} distance but the reference index in {ref.metric}; "
            f"build both with one --metric"
        )
    if ref.dim != new.dim:
        raise IndexingError(
            f"the new set holds codes of size {new.dim} but the reference set codes of size {ref.dim}; "
            "encode both with one model"
        )
    if not same_model(new.model, ref.model):
        raise IndexingError(
            f"the two sets were encoded with different models ({new.model.get('kind')} {new.model.get('path') or ''} "
            f"and {ref.model.get('kind')} {ref.model.get('path') or ''}); encode both with one model"
        )
    ids = new.ids
    if len(ids) == 0 or len(ref) == 0:
        return []
    queries = new.reconstruct(ids)
    found: dict[int, list[DuplicatePair]] = {}
    todo = np.arange(len(ids))
    kk = min(max(int(k), 1), len(ref))
    while len(todo):
        d, nb = ref.search(queries[todo], kk)
        close = (d <= max_distance) & (nb >= 0)
        for row, c_row, d_row, nb_row in zip(todo, close, d, nb):
            found[int(row)] = [DuplicatePair(int(ids[row]), int(r), float(x)) for r, x in zip(nb_row[c_row], d_row[c_row])]
        if kk >= len(ref):
            break
        todo = todo[close[:, -1]]  # the k-th neighbour is still close: there may be more
        kk = min(2 * kk, len(ref))
    pairs = [p for row in sorted(found) for p in found[row]]
    if keep is not None and pairs:
        a, b, d = (np.array(v) for v in zip(*pairs))
        pairs = [p for p, ok in zip(pairs, np.asarray(keep(a, b, d), bool)) if ok]
    return sorted(pairs, key=lambda p: (p.distance, p.new, p.ref))


def result_images(index: Index, results: Sequence[Sequence[dict[str, Any]]], *, size: int, model: Autoencoder | None = None) -> list[np.ndarray]:
    """Pictures `(m, size, size, 3)` of each query's results: read from their paths, else decoded
    from the stored codes when the model has a decoder, else grey."""
    from facespace.data import load_images
    from facespace.errors import FacespaceError

    out = []
    for hits in results:
        tiles = np.full((len(hits), size, size, 3), 0.5, np.float32)
        for j, hit in enumerate(hits):
            try:
                tiles[j] = load_images([hit["path"]], size=size)[0]
                continue
            except (KeyError, FacespaceError, OSError, TypeError):
                pass
            if model is not None and callable(getattr(model, "decode", None)):
                face = np.clip(model.decode(index.reconstruct([hit["id"]])), 0, 1)[0]
                from PIL import Image

                pic = Image.fromarray((face[..., :3] * 255).astype(np.uint8).squeeze()).convert("RGB")
                tiles[j] = np.asarray(pic.resize((size, size)), np.float32) / 255.0
        out.append(tiles)
    return out


def montage(queries: np.ndarray, tiles: list[np.ndarray], results: Sequence[Sequence[dict[str, Any]]], *, scale: int = 2) -> np.ndarray:
    """One row per query: the query, then its results, each captioned with its distance.

    Args:
        queries: `(n, s, s, C)` float images in [0, 1].
        tiles: per query, `(m, s, s, 3)` result images.
        results: the hits `search` returned (for the distances).

    Returns:
        `(h, w, 3)` uint8 picture.
    """
    from PIL import Image, ImageDraw

    from facespace.grid import to_uint8

    s = queries.shape[1] * scale
    cols = 1 + max((len(t) for t in tiles), default=0)
    cap, pad = 14, 4
    pic = Image.new("RGB", (cols * (s + pad) + pad, len(queries) * (s + cap + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(pic)
    for r, (q, row, hits) in enumerate(zip(queries, tiles, results)):
        y = pad + r * (s + cap + pad)
        for c, (img, label) in enumerate([(q, "query")] + [(t, f"{h['distance']:.3f}") for t, h in zip(row, hits)]):
            tile = Image.fromarray(to_uint8(img)).resize((s, s), Image.NEAREST)
            x = pad + c * (s + pad)
            pic.paste(tile, (x, y))
            draw.text((x + 1, y + s + 1), label, fill=(0, 0, 0) if c else (200, 0, 0))
    return np.asarray(pic)

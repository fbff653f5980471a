"""Naming probes through the gallery's index: a shortlist of people per probe from the index, then
the same exact scoring as the full scan (`match_codes`) on the shortlisted rows only.

For each probe the index (`facespace.people.gallery.gallery_index`) returns its K nearest items,
faces for scoring "nearest" or person centroids for "centroid". The shortlist is complete when,
leaving out the people this probe is a rejected face of (`Gallery.reject`), it holds `k` people
whose distances are all below the K-th item's by a margin: anyone not on it is then farther than
all `k` (every face or centroid not returned lies beyond the K-th). Otherwise K grows fourfold,
and past `MAX_K` the probe is scored against every row as before. The shortlisted rows (every
returned face, or every face of each returned person) are read from SQLite and scored by
`match_codes` with the gallery's threshold, per-person thresholds and rejections, so the answer
is the full scan's: same names, candidates and float64 distances. With an exact index this is
guaranteed; with the HNSW graph of a large gallery the shortlist can miss a person the graph did
not reach (the measured recall is in `benchmarks/results/search_scale_gallery.md`).

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> from facespace.people.gallery.gallery import Gallery
    >>> g = Gallery(":memory:", PixelEncoder(size=4, channels=1))
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((6, 4, 4, 1), np.float32)
    >>> _ = g.enroll_many({"ann": x[:3], "bob": x[3:]}, force=True)
    >>> probe = g.codes()[0][:1]
    >>> identify_indexed(g.gallery_index(), probe, threshold=0.5)[0].name
    'ann'
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np

from facespace.index import Index
from facespace.people.distances import cross_distances
from facespace.people.gallery.gallery_index import GalleryIndex, read_rows
from facespace.people.gallery.matching import Identification, match_codes

__all__ = ["FIRST_K", "MAX_K", "identify_indexed"]

FIRST_K = 32  # items asked of the index first (at least 4 k)
MAX_K = 8192  # beyond this many items a probe is scored against every row
MARGIN = 1e-4  # the index's float32 distances against the exact float64 ones
GROUP = 64  # probes scored together (their shortlists are scored as one set)


def identify_indexed(gindex: GalleryIndex, probes: np.ndarray, *, threshold: float, k: int = 5,
                     per_person: dict[str, float] | None = None, radius: float = 0.0,
                     override: bool = False) -> list[Identification]:
    """`match_codes` over the whole gallery, answered from the index's shortlists.

    Args:
        gindex: the gallery's `GalleryIndex` (synced here).
        probes: `(q, d)` float32 probe codes.
        threshold, k, per_person, radius, override: as `match_codes`.

    Returns:
        One `Identification` per probe (`quality` None), equal to the full scan's.
    """
    db = gindex.db
    # the index and every row read below from one snapshot, whatever other writers do; and no other
    # thread of this process catches the shared index up while it is searched
    with gindex.held.lock:
        db.execute("BEGIN")
        try:
            return _identify(gindex, gindex.sync(), probes, threshold=threshold, k=k, per_person=per_person,
                             radius=radius, override=override)
        finally:
            db.execute("COMMIT")


def _identify(gindex: GalleryIndex, index: Index, probes: np.ndarray, *, threshold: float, k: int,
              per_person: dict[str, float] | None, radius: float, override: bool) -> list[Identification]:
    db, metric, scoring, d = gindex.db, gindex.metric, gindex.scoring, gindex.code_size
    z = np.asarray(probes, np.float32).reshape(-1, d)
    rejected = list(db.execute("SELECT person_id, code FROM rejections ORDER BY id"))
    rej_person = np.array([r[0] for r in rejected], np.int64)
    rej_codes = np.frombuffer(b"".join(r[1] for r in rejected), "<f4").reshape(len(rejected), d).astype(np.float32)
    options = dict(threshold=threshold, metric=metric, k=k, per_person=per_person, radius=radius,
                   override=override, scoring=scoring)
    out: list[Identification | None] = [None] * len(z)
    for start in range(0, len(z), GROUP):
        group = z[start : start + GROUP]
        excluded = [set()] * len(group)
        if len(rej_codes):  # the same test as match_codes: a probe within `radius` of a rejected face
            near = cross_distances(group, rej_codes, metric=metric) <= radius
            excluded = [set(rej_person[row].tolist()) for row in near]
        lists = _shortlists(index, db, group, k, excluded, scoring)
        short = [i for i, ids in enumerate(lists) if ids is not None]
        rest = [i for i, ids in enumerate(lists) if ids is None]  # never closed: scored against every row
        for rows, ids in ((short, np.concatenate([lists[i] for i in short]) if short else None), (rest, None)):
            for i, answer in zip(rows, _score(db, group[rows], ids, d, rej_person, rej_codes, options)):
                out[start + i] = answer
    return out  # type: ignore[return-value]


def _person_of(db: sqlite3.Connection, ids: np.ndarray, scoring: str) -> dict[int, int]:
    if scoring == "centroid":
        return {int(i): int(i) for i in ids}
    return dict(db.execute("SELECT id, person_id FROM faces WHERE id IN (SELECT value FROM json_each(?))",
                           (json.dumps(ids.tolist()),)))


def _shortlists(index: Index, db: sqlite3.Connection, z: np.ndarray, k: int, excluded: list[set[int]],
                scoring: str) -> list[np.ndarray | None]:
    """Per probe, the index ids (faces or people) of a complete shortlist, or None past `MAX_K`."""
    n = len(index)
    out: list[np.ndarray | None] = [None] * len(z)
    todo = list(range(len(z)))
    K = min(max(FIRST_K, 4 * k), n)
    while todo and n:
        dist, ids = index.search(z[todo], K)
        person = _person_of(db, np.unique(ids[ids >= 0]), scoring)
        left = []
        for row, p in enumerate(todo):
            found = ids[row] >= 0
            item, d = ids[row][found], dist[row][found]
            owners = np.array([person[int(i)] for i in item], np.int64)
            _, first = np.unique(owners, return_index=True)
            first = np.sort(first)  # each person's nearest returned item, nearest first
            kept = [j for j in first if int(owners[j]) not in excluded[p]]
            if K >= n or (len(kept) >= k and d[kept[k - 1]] < d[-1] - MARGIN):
                out[p] = item
            else:
                left.append(p)
        if K >= n or 4 * K > MAX_K:
            break
        todo, K = left, min(4 * K, n)
    return out


def _score(db: sqlite3.Connection, z: np.ndarray, ids: np.ndarray | None, d: int, rej_person: np.ndarray,
           rej_codes: np.ndarray, options: dict[str, Any]) -> list[Identification]:
    """`match_codes` of probes `z` against the rows of `ids` (faces, or people for "centroid"; all for None)."""
    if not len(z):
        return []
    if ids is not None:
        ids = np.unique(np.asarray(ids, np.int64))
    column = "person_id" if options["scoring"] == "centroid" else "id"
    _, person_ids, codes = read_rows(db, ids, d, column=column)
    people = np.unique(person_ids)
    names = dict(db.execute("SELECT id, name FROM people WHERE id IN (SELECT value FROM json_each(?))",
                            (json.dumps(people.tolist()),)))
    keep = np.isin(rej_person, people)
    return match_codes(z, codes, np.searchsorted(people, person_ids), [names[int(p)] for p in people],
                       rejected=rej_codes[keep], rejected_person=np.searchsorted(people, rej_person[keep]), **options)

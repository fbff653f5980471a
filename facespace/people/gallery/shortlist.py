"""Naming probes through the gallery's index: a shortlist of people per probe from the index, then
the same exact scoring as the full scan (`match_codes`) on the shortlisted rows only.

For each probe the index (`facespace.people.gallery.gallery_index`) returns its K nearest items,
faces for scoring "nearest" or person centroids for "centroid" and "snorm". The shortlist is
complete when, leaving out the people this probe is a rejected face of (`Gallery.reject`), it holds
`k` people whose scores are all below any score a person not on it can have, by a margin: every
item not returned lies beyond the K-th item's distance D, so for "nearest" and "centroid" that
bound is D itself, and for "snorm" with the cosine metric too: its index ranks people by S-norm
(an inner product, `person_stats.snorm_items`, lifted to one length and searched by l2: the
distance gives back the product; the probe's statistics computed once per probe, the margin the
float32 rounding bound). For "snorm" with l2, whose score
`((d - mu_p) / sd_p + (d - mu_t) / sd_t) / 2` grows with the centroid distance d, the bound is that
score at d = D with the person statistics (mu_t, sd_t) that make it lowest among everyone enrolled
(held with the index): exact too, but loose where people's statistics differ much (this bound
over cosine distances let every shortlist of LFW's dlib codes grow to the whole gallery, hence the
inner product). Otherwise K grows fourfold,
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
from facespace.people.gallery.gallery_index import GalleryIndex
from facespace.people.gallery.matching import Identification, match_codes
from facespace.people.gallery.person_stats import PersonStats, lift_queries, snorm_queries
from facespace.people.gallery.store import read_rows

__all__ = ["FIRST_K", "MAX_K", "identify_indexed"]

FIRST_K = 32  # items asked of the index first (at least 4 k)
MAX_K = 8192  # beyond this many items a probe is scored against every row
MARGIN = 1e-4  # the index's float32 distances against the exact float64 ones
# S-norm read from float32 l2 distances D over 2 d + 2 = 258 terms: a score is off by at most
# 258 * 6e-8 / 2 = 7.8e-6 D^2, and the exact backend's choice of the K (|x|^2 - 2 <q, x>, |x| = r) by
# about as much again, so a shortlist closes with a margin of 4 such errors of the farthest item
LIFTED_ROUNDING = 4e-5
GROUP = 64  # probes scored together (their shortlists are scored as one set)


def identify_indexed(gindex: GalleryIndex, probes: np.ndarray, *, threshold: float, k: int = 5,
                     per_person: dict[str, float] | None = None, radius: float = 0.0,
                     override: bool = False, cohort: Any = None) -> list[Identification] | None:
    """`match_codes` over the whole gallery, answered from the index's shortlists.

    Args:
        gindex: the gallery's `GalleryIndex` (synced here).
        probes: `(q, d)` float32 probe codes.
        threshold, k, per_person, radius, override, cohort: as `match_codes`.

    Returns:
        One `Identification` per probe (`quality` None), equal to the full scan's; None for a
        "snorm" gallery that keeps no person statistics for its current rows (scan it in full).
    """
    db = gindex.db
    # the index and every row read below from one snapshot, whatever other writers do; and no other
    # thread of this process catches the shared index up while it is searched
    with gindex.held.lock:
        db.execute("BEGIN")
        try:
            index = gindex.sync()
            stats = gindex.held.stats
            if gindex.scoring == "snorm" and stats is None:
                return None
            return _identify(gindex, index, probes, threshold=threshold, k=k, per_person=per_person,
                             radius=radius, override=override, cohort=cohort, stats=stats)
        finally:
            db.execute("COMMIT")
            gindex.prune()  # the log a snapshot saved while the transaction was open has passed


def _identify(gindex: GalleryIndex, index: Index, probes: np.ndarray, *, threshold: float, k: int,
              per_person: dict[str, float] | None, radius: float, override: bool, cohort: Any,
              stats: PersonStats | None) -> list[Identification]:
    db, metric, scoring, d = gindex.db, gindex.metric, gindex.scoring, gindex.code_size
    z = np.asarray(probes, np.float32).reshape(-1, d)
    rejected = list(db.execute("SELECT person_id, code FROM rejections ORDER BY id"))
    rej_person = np.array([r[0] for r in rejected], np.int64)
    rej_codes = np.frombuffer(b"".join(r[1] for r in rejected), "<f4").reshape(len(rejected), d).astype(np.float32)
    options = dict(threshold=threshold, metric=metric, k=k, per_person=per_person, radius=radius,
                   override=override, scoring=scoring, cohort=cohort)
    out: list[Identification | None] = [None] * len(z)
    for start in range(0, len(z), GROUP):
        group = z[start : start + GROUP]
        excluded = [set()] * len(group)
        if len(rej_codes):  # the same test as match_codes: a probe within `radius` of a rejected face
            near = cross_distances(group, rej_codes, metric=metric) <= radius
            excluded = [set(rej_person[row].tolist()) for row in near]
        probe_stats = cohort.stats(group) if scoring == "snorm" else None  # once per probe
        if gindex.snorm_ip:  # the index ranks people by S-norm: search with the probes as its queries
            queries = snorm_queries(group, *probe_stats)
            offset = (queries.astype(np.float64) ** 2).sum(1) + gindex.held.radius ** 2  # (q,) |q|^2 + r^2
            lists = _shortlists(index, db, lift_queries(queries), k, excluded, scoring, offset=offset)
        else:
            lists = _shortlists(index, db, group, k, excluded, scoring, probe_stats, stats)
        short = [i for i, ids in enumerate(lists) if ids is not None]
        rest = [i for i, ids in enumerate(lists) if ids is None]  # never closed: scored against every row
        for rows, ids in ((short, np.concatenate([lists[i] for i in short]) if short else None), (rest, None)):
            mine = None if probe_stats is None else tuple(s[rows] for s in probe_stats)
            for i, answer in zip(rows, _score(db, group[rows], ids, d, rej_person, rej_codes, options, mine, stats)):
                out[start + i] = answer
    return out  # type: ignore[return-value]


def _person_of(db: sqlite3.Connection, ids: np.ndarray, scoring: str) -> dict[int, int]:
    if scoring != "nearest":  # centroids: the index's ids are people
        return {int(i): int(i) for i in ids}
    return dict(db.execute("SELECT id, person_id FROM faces WHERE id IN (SELECT value FROM json_each(?))",
                           (json.dumps(ids.tolist()),)))


def _shortlists(index: Index, db: sqlite3.Connection, z: np.ndarray, k: int, excluded: list[set[int]],
                scoring: str, probe_stats: tuple[np.ndarray, np.ndarray] | None = None,
                stats: PersonStats | None = None, offset: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Per query of `(q, d)` `z`, the index ids (faces or people) of a complete shortlist, or None
    past `MAX_K`; with `probe_stats` (`(q,)` each) and everyone's `stats`: the bound of "snorm"
    over centroid distances; with `offset` `(q,)`: lifted S-norm vectors, whose score is
    `(distance^2 - offset) / 2`."""
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
            margin = MARGIN
            if offset is not None:  # -<q, x>: S-norm, up to the probe's constant
                squared = d.astype(np.float64) ** 2
                d, margin = (squared - offset[p]) / 2.0, LIFTED_ROUNDING * float(squared[-1])
            owners = np.array([person[int(i)] for i in item], np.int64)
            _, first = np.unique(owners, return_index=True)
            first = np.sort(first)  # each person's nearest returned item, nearest first
            kept = [j for j in first if int(owners[j]) not in excluded[p]]
            if probe_stats is not None:
                closed = len(kept) >= k and _snorm_closed(d[kept], owners[kept], d[-1], k,
                                                          (probe_stats[0][p], probe_stats[1][p]), stats)
            else:
                closed = len(kept) >= k and d[kept[k - 1]] < d[-1] - margin
            if K >= n or closed:
                out[p] = item
            else:
                left.append(p)
        if K >= n or 4 * K > MAX_K:
            break
        todo, K = left, min(4 * K, n)
    return out


def _snorm_closed(dist: np.ndarray, people: np.ndarray, last: float, k: int, probe: tuple[float, float],
                  stats: PersonStats) -> bool:
    """Whether `k` of the `(s,)` shortlisted `people` at index distances `dist` surely S-norm below
    anyone not returned (every one of them at `last` or farther)."""
    mp, sp = probe
    mt, st = stats.lookup(people)
    near = dist.astype(np.float64) + MARGIN  # at most their exact distances
    highest = 0.5 * ((near - mp) / sp + (near - mt) / st)  # (s,) at most their scores
    far = float(last) - MARGIN  # at least the distance of anyone not returned
    lowest = 0.5 * ((far - mp) / sp + float(np.min((far - stats.mean) / stats.spread)))
    return bool(np.partition(highest, k - 1)[k - 1] < lowest)


def _score(db: sqlite3.Connection, z: np.ndarray, ids: np.ndarray | None, d: int, rej_person: np.ndarray,
           rej_codes: np.ndarray, options: dict[str, Any], probe_stats: tuple[np.ndarray, np.ndarray] | None = None,
           stats: PersonStats | None = None) -> list[Identification]:
    """`match_codes` of probes `z` against the rows of `ids` (faces, or people for "centroid" and
    "snorm"; all for None); "snorm" with the probes' and the people's statistics already computed."""
    if not len(z):
        return []
    if ids is not None:
        ids = np.unique(np.asarray(ids, np.int64))
    column = "id" if options["scoring"] == "nearest" else "person_id"
    _, person_ids, codes = read_rows(db, ids, d, column=column)
    people = np.unique(person_ids)
    names = dict(db.execute("SELECT id, name FROM people WHERE id IN (SELECT value FROM json_each(?))",
                            (json.dumps(people.tolist()),)))
    keep = np.isin(rej_person, people)
    return match_codes(z, codes, np.searchsorted(people, person_ids), [names[int(p)] for p in people],
                       rejected=rej_codes[keep], rejected_person=np.searchsorted(people, rej_person[keep]),
                       probe_stats=probe_stats, person_stats=None if stats is None else stats.lookup(people), **options)

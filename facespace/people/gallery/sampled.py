"""The stranger threshold of a gallery, recalibrated in every change: in full for small galleries,
from a sample of faces kept up to date change by change for large ones.

A gallery's threshold comes from each enrolled face's genuine and impostor scores
(`facespace.people.gallery.matching.calibrate_strangers`): its nearest other person, which costs
every face against every other, O(n^2): about 10 s at 20,000 faces and weeks at a million. Up to
`FULL_MAX_FACES` faces that full computation runs in each change, as it always has. Beyond, the
scores are kept for a sample of the faces only, in the table `calibration_sample`, and brought
up to date from the change log (`facespace.people.gallery.changes`) in the same transaction:

- a face is in the sample when a hash of its id falls under the rate 2^-j, with j the smallest
  for which the sample is under 2 `SAMPLE_FACES` (so up to 40,000 faces; every face below 40,000);
- a face entering the sample gets its scores against every face (or person centroid), O(n);
- the sampled faces get the distances to the faces (centroids) just added, O(sample x added), and
  those whose nearest other person changed or left are recomputed against every row;
- genuine scores are recomputed for the people whose faces changed (their own rows only).

Each sampled score is the exact score of that face, so the threshold is the one the full
computation gives on the sampled faces; `stranger_threshold`'s 95 % bound holds for the sample
(tens of thousands of impostor scores). The calibration facts say how many faces were sampled.

Scoring "snorm" is sampled the same way, its scores S-normalised (`centroid_scores` with the
cohort): each sampled face's cohort statistics are computed once, when it enters the sample, and
kept in the table `sample_stats`; every person's are the ones the gallery keeps
(`facespace.people.gallery.person_stats`), of their centroid as identification makes it (the
full computation's centroids differ in the last float32 bits, its scores by ~1e-6).

Example:
    >>> in_sample(np.arange(4), 0).tolist()
    [True, True, True, True]
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np

from facespace.people.distances import cross_distances, pair_distances, person_centroids
from facespace.people.gallery.changes import changes_since, generation, has_log, log_start
from facespace.people.gallery.matching import calibrate_strangers, threshold_from_scores
from facespace.people.gallery.person_stats import read_person_stats, update_person_stats
from facespace.people.gallery.store import read_rows
from facespace.people.thresholds import reject_radius

__all__ = ["FULL_MAX_FACES", "SAMPLE_FACES", "in_sample", "recalibrate"]

FULL_MAX_FACES = 5_000  # up to this many faces: every face's scores, computed afresh (as always)
SAMPLE_FACES = 10_000  # beyond: every face up to twice this many, then between this and twice this
SAMPLED_SCORINGS = ("nearest", "centroid", "snorm")

SAMPLE_TABLE = """CREATE TABLE IF NOT EXISTS calibration_sample (
    face_id INTEGER PRIMARY KEY,  -- a sampled enrolled face (no foreign key: the change log says what left)
    person_id INTEGER NOT NULL,
    near_genuine REAL,            -- to the nearest other face of the same person (NULL: none)
    genuine REAL,                 -- the scoring's genuine score (centroid: to their centroid without it)
    impostor REAL,                -- to the nearest other person (face or centroid; NULL: nobody else)
    impostor_of INTEGER           -- that person
)"""
SAMPLE_STATS_TABLE = """CREATE TABLE IF NOT EXISTS sample_stats (
    face_id INTEGER PRIMARY KEY,  -- a sampled face of an S-norm gallery
    mean REAL NOT NULL,           -- of its distances to its nearest cohort faces
    spread REAL NOT NULL          -- their standard deviation
)"""


def in_sample(face_ids: np.ndarray, rate_log2: int) -> np.ndarray:
    """Whether each face id is in a sample of rate `2^-rate_log2` (splitmix64 of the id: fixed per id)."""
    x = np.asarray(face_ids, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(64 - 40)) < np.uint64(1 << (40 - min(int(rate_log2), 40)))


def rate_for(n_faces: int) -> int:
    """The sample's rate exponent j for `n_faces`: the smallest with n / 2^j < 2 SAMPLE_FACES."""
    j = 0
    while n_faces >> j >= 2 * SAMPLE_FACES:
        j += 1
    return j


def recalibrate(db: sqlite3.Connection, *, cohort: Any = None) -> tuple[float | None, dict | None, float | None]:
    """Inside a write transaction: the gallery's `(threshold, calibration facts, reject radius)`.

    Args:
        db: the gallery, inside the transaction that changed it.
        cohort: the fitted cohort of a "snorm" gallery (`Gallery.cohort()`), else None.
    """
    meta = dict(db.execute("SELECT key, value FROM meta"))
    n = int(db.execute("SELECT COUNT(*) FROM faces").fetchone()[0])
    scoring, metric, d = meta.get("scoring", "nearest"), meta["metric"], int(meta["code_size"])
    impostors = json.loads(meta.get("model_impostors") or "null")
    if scoring == "snorm" and cohort is not None and has_log(db):  # what the index of an S-norm gallery reads
        update_person_stats(db, cohort, metric=metric, code_size=d)
    if n <= FULL_MAX_FACES or scoring not in SAMPLED_SCORINGS or not has_log(db) or (scoring == "snorm" and cohort is None):
        db.execute(SAMPLE_TABLE)
        db.execute("DELETE FROM calibration_sample")  # out of date from now on: refilled when needed
        if scoring == "snorm":
            db.execute(SAMPLE_STATS_TABLE)
            db.execute("DELETE FROM sample_stats")
        db.execute("DELETE FROM meta WHERE key IN ('sample_generation', 'sample_rate_log2')")
        _, person, codes = read_rows(db, None, d)
        return calibrate_strangers(codes, person, metric=metric, target_far=float(meta["target_far"]),
                                   model_impostors=impostors, scoring=scoring, cohort=cohort)
    j = update_sample(db, meta, n, cohort=cohort if scoring == "snorm" else None)
    rows = np.array(list(db.execute("SELECT near_genuine, genuine, impostor FROM calibration_sample")),
                    np.float64).reshape(-1, 3)  # NULL -> nan
    near, genuine, impostor = (c[np.isfinite(c)] for c in rows.T)
    people = int(db.execute("SELECT COUNT(DISTINCT person_id) FROM faces").fetchone()[0])
    t, facts = threshold_from_scores(genuine, impostor, people=people, faces=n, target_far=float(meta["target_far"]),
                                     model_impostors=impostors)
    if facts is not None:
        facts.update(sampled_faces=len(rows), sample_rate=2.0 ** -j)
    return t, facts, reject_radius(near)


def update_sample(db: sqlite3.Connection, meta: dict[str, str], n: int, *, cohort: Any = None) -> int:
    """Bring `calibration_sample` up to the gallery's generation; returns the rate exponent j.

    Args:
        cohort: "snorm": the gallery's fitted `CohortNorm` (its person statistics already current).
    """
    db.execute(SAMPLE_TABLE)
    if cohort is not None:
        db.execute(SAMPLE_STATS_TABLE)
    scoring, metric, d = meta.get("scoring", "nearest"), meta["metric"], int(meta["code_size"])
    j, now = rate_for(n), generation(db)
    since, old_j = meta.get("sample_generation", ""), meta.get("sample_rate_log2", "")
    if since != "" and int(since) < log_start(db):  # older than the log reaches back: filled afresh
        since = ""
    sample: dict[int, list] = {}
    face_stats: dict[int, tuple[float, float]] = {}  # "snorm": the sampled faces' cohort statistics
    touched: set[int] = set()
    new_faces = np.zeros(0, np.int64)
    if since != "" and old_j != "":
        sample = {r[0]: list(r) for r in db.execute("SELECT * FROM calibration_sample")}
        if cohort is not None:
            face_stats = {r[0]: (r[1], r[2]) for r in db.execute("SELECT * FROM sample_stats")}
        changed = changes_since(db, int(since))
        touched = set(changed.person_ids.tolist())
        for face in changed.face_ids.tolist():  # changed faces leave, and enter again if still enrolled
            sample.pop(face, None)
        new_faces = read_rows(db, changed.face_ids, d)[0]
    candidates = new_faces
    if since == "" or old_j == "" or j < int(old_j):  # a first fill, or a higher rate: every face is a candidate
        candidates = np.array([r[0] for r in db.execute("SELECT id FROM faces")], np.int64)
    kept = np.array(sorted(sample), np.int64)
    for face in kept[~in_sample(kept, j)].tolist():  # a lower rate only drops faces
        sample.pop(face)
    entering = [f for f in candidates[in_sample(candidates, j)].tolist() if f not in sample]
    full_set = set(entering) | {f for f, row in sample.items() if row[5] in touched}  # whose nearest other changed
    full, update = sorted(full_set), [f for f in sample if f not in full_set]
    if full:
        face_ids, person_ids, codes = read_rows(db, None, d)
        rows = np.searchsorted(face_ids, full)
        query, (items, item_person) = _query(codes[rows], scoring, metric), _items(person_ids, codes, scoring, metric)
        norm = None if cohort is None else (cohort, _face_stats(cohort, face_stats, full, query),
                                            read_person_stats(db).lookup(item_person))
        imp, imp_of = _nearest_other(query, person_ids[rows], items, item_person, metric, norm=norm)
        for f, p, v, o in zip(full, person_ids[rows].tolist(), imp, imp_of):
            sample[f] = [f, p, None, None, v, o]
    if update and touched:  # the faces just added, or the centroids of the people whose faces changed
        _, new_person, new_codes = read_rows(db, new_faces, d) if scoring == "nearest" else \
            read_rows(db, np.array(sorted(touched), np.int64), d, column="person_id")
        _, person_ids, codes = read_rows(db, np.array(update, np.int64), d)  # in face id order, as `update`
        query, (items, item_person) = _query(codes, scoring, metric), _items(new_person, new_codes, scoring, metric)
        norm = None if cohort is None else (cohort, _face_stats(cohort, face_stats, update, query),
                                            read_person_stats(db, item_person).lookup(item_person))
        imp, imp_of = _nearest_other(query, person_ids, items, item_person, metric, norm=norm)
        for f, v, o in zip(update, imp, imp_of):
            if v is not None and (sample[f][4] is None or v < sample[f][4]):
                sample[f][4], sample[f][5] = v, o
    _genuine(db, sample, touched | {sample[f][1] for f in full}, d, scoring, metric, cohort, face_stats)
    db.execute("DELETE FROM calibration_sample")
    db.executemany("INSERT INTO calibration_sample VALUES (?, ?, ?, ?, ?, ?)", list(sample.values()))
    if cohort is not None:
        db.execute("DELETE FROM sample_stats")
        db.executemany("INSERT INTO sample_stats VALUES (?, ?, ?)", [(f, *face_stats[f]) for f in sample])
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [("sample_generation", str(now)),
                                                                  ("sample_rate_log2", str(j))])
    return j


def _query(codes: np.ndarray, scoring: str, metric: str) -> np.ndarray:
    """Faces as `centroid_scores` compares them with centroids: unit length in float32 for cosine."""
    return codes if scoring == "nearest" else _unit(codes, metric).astype(np.float32)


def _face_stats(cohort: Any, kept: dict[int, tuple[float, float]], faces: list[int], query: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """"snorm": `(mean, spread)` `(f,)` of `faces` (`query` `(f, d)` their codes as `_query` makes
    them), computed for those `kept` lacks and added to it."""
    missing = [i for i, f in enumerate(faces) if f not in kept]
    if missing:
        mean, spread = cohort.stats(query[missing])
        kept.update(zip([faces[i] for i in missing], zip(mean.tolist(), spread.tolist())))
    return tuple(np.array([kept[f][c] for f in faces], np.float64) for c in (0, 1))


def _items(person: np.ndarray, codes: np.ndarray, scoring: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """What an impostor score is taken over: `(vectors (m, d), their person (m,))`, faces or
    centroids (made as `centroid_scores` makes them, rounding included)."""
    if scoring == "nearest":
        return codes, person
    people, means = person_centroids(_unit(codes, metric), person, metric="l2")  # float32 means of unit codes
    return _unit(means, metric).astype(np.float32), people


def _unit(codes: np.ndarray, metric: str) -> np.ndarray:
    """float64 codes, unit length for cosine."""
    z = np.asarray(codes, np.float64)
    if metric == "cosine":
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z


def _nearest_other(codes: np.ndarray, person: np.ndarray, items: np.ndarray, item_person: np.ndarray, metric: str,
                   chunk: int = 1024, item_chunk: int = 32768, *, norm: tuple | None = None) -> tuple[list, list]:
    """Per code, the distance to its nearest item of another person and that person (None, None: none);
    "snorm": S-normalised by `norm` = `(cohort, (mean, spread) of the codes, (mean, spread) of the items)`."""
    best = np.full(len(codes), np.inf)
    of = np.full(len(codes), -1, np.int64)
    for i in range(0, len(codes), chunk):
        for s in range(0, len(items), item_chunk):
            dist = cross_distances(codes[i : i + chunk], items[s : s + item_chunk], metric=metric)  # (c, m)
            if norm is not None:
                cohort, (cm, cs), (im, is_) = norm
                dist = cohort.normalise(dist, None, None, probe_stats=(cm[i : i + chunk], cs[i : i + chunk]),
                                        target_stats=(im[s : s + item_chunk], is_[s : s + item_chunk]))
            dist[person[i : i + chunk, None] == item_person[None, s : s + item_chunk]] = np.inf
            col = dist.argmin(1)
            value = dist[np.arange(len(dist)), col]
            better = value < best[i : i + chunk]
            best[i : i + chunk][better] = value[better]
            of[i : i + chunk][better] = item_person[s + col[better]]
    found = np.isfinite(best)
    return ([float(v) if ok else None for v, ok in zip(best, found)],
            [int(p) if ok else None for p, ok in zip(of, found)])


def _genuine(db: sqlite3.Connection, sample: dict[int, list], people: set[int], d: int, scoring: str,
             metric: str, cohort: Any = None, face_stats: dict | None = None) -> None:
    """Recompute the genuine scores of the sampled faces of `people` from those people's rows
    ("snorm": S-normalised, with the sampled faces' kept statistics `face_stats`)."""
    if not people:
        return
    face_ids, person_ids, codes = read_rows(db, np.array(sorted(people), np.int64), d, column="person_id")
    z = _unit(codes, metric)
    order = np.argsort(person_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(person_ids[order])) + 1
    for group in np.split(order, bounds):
        mine = [r for r in group.tolist() if int(face_ids[r]) in sample]
        if not mine:
            continue
        dist = cross_distances(codes[mine], codes[group], metric=metric)  # (s, g)
        dist[np.arange(len(mine)), np.searchsorted(group, mine)] = np.inf  # a face is not its own neighbour
        near = dist.min(1)
        if scoring != "nearest" and len(group) > 1:
            mean = person_centroids(z[group], person_ids[group], metric="l2")[1]  # (1, d) float32
            own = (mean.astype(np.float64) * len(group) - z[mine]) / (len(group) - 1)  # their centroid without this face
            own = _unit(own, metric).astype(np.float32)
            genuine = pair_distances(z[mine].astype(np.float32), own, metric=metric)
            if cohort is not None:
                faces = face_ids[mine].tolist()
                mine_stats = _face_stats(cohort, face_stats, faces, z[mine].astype(np.float32))
                genuine = cohort.normalise_pairs(genuine, mine_stats, cohort.stats(own))
        else:
            genuine = near
        for r, v, g in zip(mine, near, genuine):
            ok = np.isfinite(v)
            sample[int(face_ids[r])][2:4] = [float(v) if ok else None, float(g) if ok else None]

"""The cohort statistics of every enrolled person of an S-norm gallery, kept in the gallery file.

Scoring "snorm" (`facespace.people.cohort_norm`) normalises a probe's distance to a person's
centroid by the mean and spread of that centroid's distances to its nearest cohort faces. Those
depend on the person's faces only, so they are computed once per person and kept in the table
`person_stats`, brought up to date in every change's write transaction (`update_person_stats`,
called by the recalibration): the people whose faces changed since the generation the table
records (`person_stats_generation`, from the change log of `facespace.people.gallery.changes`)
get theirs recomputed from their rows, the people gone lose theirs. Each value is what
`match_codes` computes for that person's centroid (`person_centroids` of their rows, then
`CohortNorm.stats`), so answers read from the table are the full scan's.

The index of an S-norm gallery (`facespace.people.gallery.gallery_index`) reads them from the table,
and only when the table reflects the generation it reads (`stats_current`): a gallery last changed
by an older facespace is scanned in full until its next change. With the cosine metric, S-norm is an
inner product of vectors made of a person's centroid and statistics (`snorm_items`) with vectors
made of a probe and its own (`snorm_queries`), so the index (of those vectors lifted to one length,
`lift_items`, searched by l2) ranks people in S-norm order; with l2 it holds the centroids and every
person's statistics in memory (`PersonStats`).

Example:
    >>> stats = PersonStats(np.array([3, 7]), np.array([0.9, 0.8]), np.array([0.1, 0.2]))
    >>> stats.lookup(np.array([7]))[0].tolist()
    [0.8]
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

import numpy as np

from facespace.people.cohort_norm import CohortNorm
from facespace.people.distances import person_centroids
from facespace.people.gallery.changes import changes_since, generation, log_start
from facespace.people.gallery.store import read_rows

__all__ = ["PersonStats", "lift_items", "lift_queries", "read_person_stats", "snorm_items",
           "snorm_queries", "stats_current", "update_person_stats"]

STATS_TABLE = """CREATE TABLE IF NOT EXISTS person_stats (
    person_id INTEGER PRIMARY KEY,  -- an enrolled person (no foreign key: the change log says who left)
    mean REAL NOT NULL,             -- of their centroid's distances to its nearest cohort faces
    spread REAL NOT NULL            -- the standard deviation of those distances
)"""


class PersonStats(NamedTuple):
    """Cohort statistics of people: `ids (p,) int64` sorted, `mean (p,)` and `spread (p,)` float64."""

    ids: np.ndarray
    mean: np.ndarray
    spread: np.ndarray

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, spread)`, each `(n,)` float64, of `ids` (every one of them held)."""
        rows = np.searchsorted(self.ids, np.asarray(ids, np.int64))
        return self.mean[rows], self.spread[rows]

    def replace(self, people: np.ndarray, new: "PersonStats") -> "PersonStats":
        """These statistics with `people`'s dropped and `new`'s (a subset of `people`) added."""
        keep = ~np.isin(self.ids, people)
        ids = np.concatenate([self.ids[keep], new.ids])
        order = np.argsort(ids, kind="stable")
        return PersonStats(ids[order], np.concatenate([self.mean[keep], new.mean])[order],
                           np.concatenate([self.spread[keep], new.spread])[order])


def stats_current(db: sqlite3.Connection, now: int) -> bool:
    """Whether `person_stats` reflects generation `now` (call inside the read transaction that reads it)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'person_stats_generation'").fetchone()
    return row is not None and row[0] == str(int(now))


def read_person_stats(db: sqlite3.Connection, people: np.ndarray | None = None) -> PersonStats:
    """The kept statistics of `people` (everyone for None) that the table holds."""
    sql, args = "SELECT person_id, mean, spread FROM person_stats", ()
    if people is not None:
        sql += " WHERE person_id IN (SELECT value FROM json_each(?))"
        args = (json.dumps(np.asarray(people, np.int64).tolist()),)
    rows = np.array(list(db.execute(sql + " ORDER BY person_id", args)), np.float64).reshape(-1, 3)
    return PersonStats(rows[:, 0].astype(np.int64), rows[:, 1].copy(), rows[:, 2].copy())


def update_person_stats(db: sqlite3.Connection, cohort: CohortNorm, *, metric: str, code_size: int) -> None:
    """Inside a write transaction: bring `person_stats` up to the gallery's generation.

    Args:
        db: the gallery, inside the transaction that changed it.
        cohort: the gallery's fitted `CohortNorm`.
        metric: the gallery's metric; code_size: d.
    """
    db.execute(STATS_TABLE)
    now = generation(db)
    row = db.execute("SELECT value FROM meta WHERE key = 'person_stats_generation'").fetchone()
    since = int(row[0]) if row and row[0] != "" else -1
    if log_start(db) <= since <= now:  # caught up from the log: the people whose faces changed
        people = changes_since(db, since).person_ids
        db.execute("DELETE FROM person_stats WHERE person_id IN (SELECT value FROM json_each(?))",
                   (json.dumps(people.tolist()),))
        _, person_ids, codes = read_rows(db, people, code_size, column="person_id")
    else:  # a first fill, or a table older than the log reaches back
        db.execute("DELETE FROM person_stats")
        _, person_ids, codes = read_rows(db, None, code_size)
    if len(codes):
        ids, centroids = person_centroids(codes, person_ids, metric=metric)
        mean, spread = cohort.stats(centroids)
        db.executemany("INSERT INTO person_stats VALUES (?, ?, ?)", zip(ids.tolist(), mean.tolist(), spread.tolist()))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('person_stats_generation', ?)", (str(now),))


def snorm_items(centroids: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """People as vectors whose inner product with `snorm_queries` ranks them by S-norm (cosine).

    With `c` the cosine of a probe p and a centroid t, `a = 1 / spread_t`, the S-norm score is
    `((1 - c - mean_p) / spread_p + (1 - c - mean_t) * a) / 2 = ((1 - mean_p) / spread_p - <q, x>) / 2`
    with `q = [p / |p| / spread_p, p / |p|, 1]` and `x = [t / |t|, a t / |t|, -a (1 - mean_t)]`: an
    index ranking by inner product ("ip") returns people in S-norm order.

    Args:
        centroids: `(p, d)` the people's centroids; mean, spread: `(p,)` their statistics.

    Returns:
        `(p, 2 d + 1)` float32.
    """
    t = np.asarray(centroids, np.float64)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    a = 1.0 / np.asarray(spread, np.float64)
    return np.concatenate([t, a[:, None] * t, (-a * (1.0 - np.asarray(mean, np.float64)))[:, None]], 1).astype(np.float32)


def snorm_queries(probes: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """`(q, 2 d + 1)` float32 probes for `snorm_items`, from `(q, d)` probes and their `(q,)` statistics."""
    p = np.asarray(probes, np.float64)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    return np.concatenate([p / np.asarray(spread, np.float64)[:, None], p, np.ones((len(p), 1))], 1).astype(np.float32)


def lift_items(vectors: np.ndarray, radius: float) -> np.ndarray:
    """`(p, D)` vectors of length at most `radius` as `(p, D + 1)` float32 of length `radius`, so that an
    l2 index ranks them by inner product (`|q - x|^2 = |q|^2 + radius^2 - 2 <q, x>` for `lift_queries`):
    graphs search such an index far better than one of inner products of unequal lengths."""
    x = np.asarray(vectors, np.float64)
    rest = np.sqrt(np.maximum(radius * radius - (x * x).sum(1), 0.0))
    return np.concatenate([x, rest[:, None]], 1).astype(np.float32)


def lift_queries(queries: np.ndarray) -> np.ndarray:
    """`(q, D)` queries as `(q, D + 1)` float32 for `lift_items` (a zero appended)."""
    q = np.asarray(queries, np.float32)
    return np.concatenate([q, np.zeros((len(q), 1), np.float32)], 1)

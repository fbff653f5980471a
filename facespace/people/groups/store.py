"""Storage and bookkeeping behind `facespace.people.groups.groups`: face rows, links, join radius, settling.

Functions here run inside a transaction that `facespace.people.groups.groups.FaceGroups` opened; they read and
write the version-2 group tables of a gallery file (see `facespace.people.gallery.store`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from facespace.people.groups.constrained import contradictions, enforce, match_labels, must_components
from facespace.people.gallery.store import GalleryError
from facespace.protocol import Encoder

# The join radius for `add` after a clustering without an eps: this quantile of the distances from
# each grouped face to its nearest face in the same group.
JOIN_QUANTILE = 0.9


@dataclass(frozen=True)
class Group:
    """One group of faces (one person, as far as the clustering and the corrections say).

    Attributes:
        id: stable id (never reused for another group).
        name: the name a person gave it, or None.
        face_ids: its faces' ids, ascending.
        sources: each face's source (photo path, `array[i]` for arrays).
    """

    id: int
    name: str | None
    face_ids: tuple[int, ...]
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.face_ids)


class Added(NamedTuple):
    """What `FaceGroups.add` did with each face given.

    Attributes:
        face_ids: `(n,)` int64 id of each face (its existing id when it was already there).
        group_ids: `(n,)` int64 group of each face, -1 when ungrouped.
        new: `(n,)` bool, False for faces that were already in the file (not added twice).
    """

    face_ids: np.ndarray
    group_ids: np.ndarray
    new: np.ndarray


class State(NamedTuple):
    """Everything about the faces, read inside one transaction; rows in face-id order."""

    ids: np.ndarray  # (n,) int64 face ids
    codes: np.ndarray  # (n, d) float32
    group: np.ndarray  # (n,) int64 group id, -1 ungrouped
    must: list[tuple[int, int]]  # row pairs
    cannot: list[tuple[int, int]]
    names: dict[int, str]  # group id -> name

    def rows(self, face_ids: Any, path: str) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(face_ids, np.int64))
        pos = np.searchsorted(self.ids, ids)
        found = (pos < len(self.ids)) & (self.ids[np.minimum(pos, len(self.ids) - 1)] == ids) if len(self.ids) else ids < 0
        if not found.all():
            raise GalleryError(f"no face {int(ids[~found][0])} in {path}; `facespace groups faces` lists the face ids")
        return pos

    def group_rows(self, group_id: Any, path: str) -> np.ndarray:
        """Rows of one group; raises `GalleryError` naming it when it does not exist."""
        rows = np.flatnonzero(self.group == int(group_id))
        if len(rows) == 0:
            raise GalleryError(f"no group {group_id} in {path}; `facespace groups list` shows the groups")
        return rows


def star(rows: np.ndarray) -> list[tuple[int, int]]:
    """Must-links joining all rows (n - 1 pairs instead of n^2)."""
    return [(int(rows[0]), int(r)) for r in rows[1:]]


def read_state(db: sqlite3.Connection, code_size: int) -> State:
    """All face rows, links and names."""
    rows = list(db.execute("SELECT id, code, group_id FROM group_faces ORDER BY id"))
    ids = np.array([r[0] for r in rows], np.int64)
    codes = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), code_size).copy()
    group = np.array([-1 if r[2] is None else r[2] for r in rows], np.int64)
    row = {int(f): i for i, f in enumerate(ids)}
    must, cannot = [], []
    for a, b, kind in db.execute("SELECT face_a, face_b, kind FROM group_links"):
        (must if kind == "must" else cannot).append((row[a], row[b]))
    names = dict(db.execute("SELECT id, name FROM groups WHERE name IS NOT NULL"))
    return State(ids, codes, group, must, cannot, names)


def unit_rows(codes: np.ndarray, metric: str) -> np.ndarray:
    """The codes as the clustering sees them: unit rows for the cosine metric."""
    z = np.asarray(codes, np.float64)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12) if metric == "cosine" else z


def join_radius(codes: np.ndarray, group: np.ndarray, metric: str) -> float | None:
    """`JOIN_QUANTILE` of each grouped face's distance to its nearest face in its group (None: no pairs)."""
    from facespace.people.distances import cross_distances

    nearest = []
    for gid in np.unique(group[group >= 0]):
        rows = np.flatnonzero(group == gid)
        if len(rows) > 1:
            d = cross_distances(codes[rows], codes[rows], metric=metric)
            np.fill_diagonal(d, np.inf)
            nearest.append(d.min(1))
    return float(np.quantile(np.concatenate(nearest), JOIN_QUANTILE)) if nearest else None


def prepare_codes(model: Encoder | None, code_size: int, metric: str, images_or_codes: Any,
                  sources: list[str] | None) -> tuple[np.ndarray, list[str], list[str]]:
    """`(codes (n, d) float32, sources, hashes)` from images, image paths or codes.

    The hash is of the pixels for images (codes may differ in the last bits between machines) and
    of the code bytes for codes: a face already stored is recognised and not stored twice.
    """
    x = images_or_codes
    if isinstance(x, (str, os.PathLike)):
        x = [x]
    paths = isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], (str, os.PathLike))
    arr = None if paths else np.asarray(x)
    if arr is not None and arr.size == 0:
        raise GalleryError("no faces given; pass images, image paths or (n, d) codes")
    if arr is not None and arr.ndim <= 2:  # codes
        z = np.atleast_2d(arr).astype(np.float32)
        if z.shape[1] != code_size:
            raise GalleryError(f"codes have {z.shape[1]} values each but this gallery's model makes "
                               f"{code_size}; pass codes of that model, or images")
        hashes = [hashlib.sha256(b"code" + c.astype("<f4").tobytes()).hexdigest() for c in z]
    else:
        if model is None:
            raise GalleryError("images need the model to encode them; open the groups with the model "
                               "the gallery was built with, or pass codes")
        from facespace.data.inputs import as_images

        images = as_images(model, [str(p) for p in x] if paths else x, check_faces=True)
        z = np.asarray(model.encode(images), np.float32)
        hashes = [hashlib.sha256(np.ascontiguousarray(img, "<f4").tobytes()).hexdigest() for img in images]
        if sources is None and paths:
            sources = [str(p) for p in x]
    if not np.isfinite(z).all():
        raise GalleryError("codes contain NaN or infinite values; drop those faces first")
    if metric == "cosine" and (np.linalg.norm(z, axis=1) < 1e-12).any():
        raise GalleryError("a code is all zeros and has no direction for the cosine metric; drop that face")
    if sources is None:
        sources = [f"array[{i}]" for i in range(len(z))]
    if len(sources) != len(z):
        raise GalleryError(f"{len(sources)} sources for {len(z)} faces; give one source per face")
    return z, [str(s) for s in sources], hashes


def store_links(db: sqlite3.Connection, st: State, must: list[tuple[int, int]],
                cannot: list[tuple[int, int]], code_size: int) -> State:
    """Store new links (row pairs) unless they contradict the stored ones; the state afterwards.

    Raises:
        GalleryError: the links would make two faces both the same person and different people.
    """
    comp = must_components(len(st.ids), st.must + must)
    bad = contradictions(comp, st.cannot + cannot)
    if bad:
        a, b = (int(st.ids[r]) for r in bad[0])
        raise GalleryError(
            f"faces {a} and {b} would be both the same person (must-linked, through merges, splits, names "
            f"or links) and different people (cannot-linked); nothing was changed. Remove one link first "
            f"(`facespace groups unlink A B`) or split the group instead")
    now = time.time()
    rows = [(int(min(st.ids[a], st.ids[b])), int(max(st.ids[a], st.ids[b])), kind, now)
            for pairs, kind in ((must, "must"), (cannot, "cannot")) for a, b in pairs if a != b]
    db.executemany("INSERT OR IGNORE INTO group_links (face_a, face_b, kind, created) VALUES (?, ?, ?, ?)", rows)
    return read_state(db, code_size)


def settle(db: sqlite3.Connection, st: State, labels: np.ndarray, metric: str,
           forced: dict[int, int] | None = None) -> np.ndarray:
    """Make `labels` honour the constraints, map them to group ids, write; returns each row's group.

    Args:
        st: the state the labels are for.
        labels: `(n,)` int clusters (-1 noise); may reuse group ids as labels.
        metric: the gallery's metric.
        forced: `{label: group id}` decided by the caller (the kept side of a split).

    Returns:
        `(n,)` int64 group id of each row afterwards, -1 ungrouped.
    """
    comp = must_components(len(st.ids), st.must)
    reps = {}
    for gid in sorted(st.names):  # a named group's anchor: its largest must-linked component
        rows = np.flatnonzero(st.group == gid)
        if len(rows):
            cs, counts = np.unique(comp[rows], return_counts=True)
            reps[gid] = int(rows[comp[rows] == cs[np.argmax(counts)]][0])
    named = list(reps.values())
    implied = [(a, b) for i, a in enumerate(named) for b in named[i + 1 :] if comp[a] != comp[b]]
    labels = enforce(unit_rows(st.codes, metric), labels, must=st.must, cannot=st.cannot + implied, keep=named)
    forced = dict(forced or {})
    for gid, rep in reps.items():  # the cluster holding a named group's anchor keeps its id
        if labels[rep] not in forced and gid not in forced.values():
            forced[int(labels[rep])] = gid
    mapping = match_labels(st.group, labels, forced=forced)
    now = time.time()
    for label in np.unique(labels[labels >= 0]).tolist():
        if label not in mapping:
            mapping[label] = db.execute("INSERT INTO groups (created) VALUES (?)", (now,)).lastrowid
    final = np.array([mapping[v] if v >= 0 else -1 for v in labels.tolist()], np.int64)
    changed = np.flatnonzero(final != st.group)
    db.executemany("UPDATE group_faces SET group_id = ? WHERE id = ?",
                   [(None if final[r] < 0 else int(final[r]), int(st.ids[r])) for r in changed])
    drop_empty(db)
    return final


def drop_empty(db: sqlite3.Connection) -> None:
    """Delete groups left without faces."""
    db.execute("DELETE FROM groups WHERE id NOT IN (SELECT DISTINCT group_id FROM group_faces WHERE group_id IS NOT NULL)")

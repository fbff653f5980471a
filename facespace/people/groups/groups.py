"""Face groups that remember corrections: persistent clusters of faces in a gallery file (issue 10).

A photo collection is grouped by person once (`recluster`), then grows: `add` puts each new face
into the group of its nearest grouped face when that face is within the join radius (learned at the
last re-clustering), else leaves it ungrouped until the next re-clustering. Ids are never renumbered:
adding keeps them, and re-clustering maps the new clusters onto the old ids by maximum overlap.

A person's corrections are stored as constraints between faces and honoured by every later
re-clustering (see `facespace.people.groups.constrained`):

- `merge(a, b)`: one person. Must-links join every face of both groups.
- `split(group, face_ids)`: two people. Must-links join each part; a cannot-link keeps them apart
  (must-links that crossed the parts, from earlier corrections, are dropped: the latest word wins).
- `name(group, name)`: the person looked at the group and named it, so its faces are confirmed:
  must-linked together. A named group keeps its name and id through re-clustering, and two named
  groups are never merged by the clustering.
- `must_link(a, b)`, `cannot_link(a, b)`, `unlink(a, b)` between two faces.

Group faces are not enrolled people (`facespace.people.gallery.gallery.Gallery`), but they live in the same
SQLite file, which records the model that made the codes and refuses another. Every change is one
transaction; other processes can read meanwhile.

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> g = FaceGroups(":memory:", PixelEncoder(size=2, channels=1))
    >>> added = g.add(np.array([[1, 0, 0, 0], [.9, .1, 0, 0], [0, 0, 1, 0], [0, 0, .9, .1]], np.float32))
    >>> [len(x.face_ids) for x in g.recluster("agglomerative", n_clusters=2, min_cluster_size=1)]
    [2, 2]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from facespace.people.groups.constrained import must_components
from facespace.people.gallery.store import GalleryError, check_name, db_text, migrate, transaction
from facespace.protocol import Encoder
from facespace.people.groups.store import (
    JOIN_QUANTILE, Added, Group, State, drop_empty, join_radius, prepare_codes, read_state, settle, star, store_links,
)

__all__ = ["Added", "FaceGroups", "Group", "JOIN_QUANTILE"]


class FaceGroups:
    """Persistent, correctable face groups stored in a gallery file.

    Args:
        gallery_path: the gallery file (created when a model is given); ":memory:" for a throw-away one.
        model: the `Encoder` that makes the codes; needed to create the file and to add images
            (not codes), and checked against the one the file records.
        metric: "cosine" or "l2", fixed when the file is created.

    Example:
        >>> g = FaceGroups("photos.db", model)                          # doctest: +SKIP
        >>> g.add(["a.jpg", "b.jpg", "c.jpg"]); g.recluster("hdbscan")  # doctest: +SKIP
        >>> g.name(1, "Ada"); g.split(2, [17, 18])                      # doctest: +SKIP
    """

    def __init__(self, gallery_path: str | os.PathLike, model: Encoder | None = None, *, metric: str = "cosine"):
        from facespace.people.gallery.gallery import Gallery

        self.path = str(gallery_path)
        self.model = model
        if self.path != ":memory:" and not Path(self.path).exists() and model is None:
            raise GalleryError(f"no gallery at {self.path}; add faces with a model first "
                               f"(`facespace groups add PHOTOS --model M --gallery {self.path}`)")
        self._gallery = Gallery(self.path, model, metric=metric)
        self.db = self._gallery.db
        migrate(self.db, self.path)
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        self.metric = meta["metric"]
        self.code_size = int(meta["code_size"])

    def close(self) -> None:
        self._gallery.close()

    def __enter__(self) -> "FaceGroups":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _state(self) -> State:
        return read_state(self.db, self.code_size)

    # --- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of faces (grouped or not)."""
        return int(self.db.execute("SELECT COUNT(*) FROM group_faces").fetchone()[0])

    def groups(self) -> list[Group]:
        """Every group, by id."""
        out: dict[int, list] = {}
        for gid, name, fid, src in self.db.execute(
                "SELECT g.id, g.name, f.id, f.source FROM groups g JOIN group_faces f ON f.group_id = g.id "
                "ORDER BY g.id, f.id"):
            entry = out.setdefault(gid, [name, [], []])
            entry[1].append(fid)
            entry[2].append(src or "")
        return [Group(g, n, tuple(f), tuple(s)) for g, (n, f, s) in out.items()]

    def group(self, group_id: int) -> Group:
        """One group by id.

        Raises:
            GalleryError: no such group.
        """
        found = [g for g in self.groups() if g.id == int(group_id)]
        if not found:
            raise GalleryError(f"no group {group_id} in {self.path}; `facespace groups list` shows the groups")
        return found[0]

    def faces(self) -> list[tuple[int, str, tuple[int, ...] | None, int]]:
        """`[(face id, source, box (x, y, w, h) or None, group id or -1)]` of every face, by id."""
        return [(fid, src or "", tuple(json.loads(box)) if box else None, -1 if gid is None else gid)
                for fid, src, box, gid in self.db.execute("SELECT id, source, box, group_id FROM group_faces ORDER BY id")]

    def codes(self, face_ids: Any) -> np.ndarray:
        """`(n, d)` float32 codes of these faces."""
        st = self._state()
        return st.codes[st.rows(face_ids, self.path)]

    def links(self) -> list[tuple[int, int, str]]:
        """`[(face a, face b, "must" | "cannot")]`: the stored corrections between faces (a < b)."""
        return [tuple(r) for r in self.db.execute("SELECT face_a, face_b, kind FROM group_links ORDER BY face_a, face_b")]

    @property
    def max_distance(self) -> float | None:
        """The join radius `add` uses: set by the last re-clustering, else measured on the groups."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'groups_max_distance'").fetchone()
        if row is not None and row[0]:
            return float(row[0])
        st = self._state()
        return join_radius(st.codes, st.group, self.metric)

    # --- adding and removing -------------------------------------------------------------------
    def add(self, images_or_codes: Any, sources: list[str] | None = None, *,
            boxes: list[Any] | None = None, max_distance: float | None = None) -> Added:
        """Add faces; each joins the group of its nearest grouped face if that is near enough.

        No re-clustering happens: ids of existing groups never change, and faces far from every
        group stay ungrouped until the next `recluster`. A face already stored (same pixels, or
        the same code) is not stored twice.

        Args:
            images_or_codes: `(n, H, W, C)` float32 images at the model's shape, image paths, or
                `(n, d)` / `(d,)` codes of the gallery's model.
            sources: one label per face (default: the paths, or `array[i]`).
            boxes: one `(x, y, w, h)` box in its photo per face, or None entries (whole images).
            max_distance: join radius (default: `self.max_distance`).

        Returns:
            `Added(face_ids, group_ids, new)`.
        """
        from facespace.people.distances import cross_distances

        z, sources, hashes = prepare_codes(self.model, self.code_size, self.metric, images_or_codes, sources)
        boxes = list(boxes) if boxes is not None else [None] * len(z)
        if len(boxes) != len(z):
            raise GalleryError(f"{len(boxes)} boxes for {len(z)} faces; give one box (or None) per face")
        now = time.time()
        with transaction(self.db):
            radius = max_distance if max_distance is not None else self.max_distance
            st = self._state()
            grouped = np.flatnonzero(st.group >= 0)
            known = dict(self.db.execute("SELECT code_hash, id FROM group_faces"))
            first = {h: i for i, h in reversed(list(enumerate(hashes)))}
            fresh = [i for i, h in enumerate(hashes) if h not in known and first[h] == i]
            joined = np.full(len(z), -1, np.int64)
            if fresh and len(grouped) and radius is not None:
                for s in range(0, len(fresh), 1024):
                    part = np.array(fresh[s : s + 1024])
                    d = cross_distances(z[part], st.codes[grouped], metric=self.metric)  # (q, m)
                    best = d.argmin(1)
                    ok = d[np.arange(len(part)), best] <= radius
                    joined[part[ok]] = st.group[grouped[best[ok]]]
            for i in fresh:
                box = None if boxes[i] is None else json.dumps([int(v) for v in boxes[i]])
                known[hashes[i]] = self.db.execute(
                    "INSERT INTO group_faces (code, code_hash, source, box, group_id, added) "
                    "VALUES (?, ?, CAST(? AS TEXT), ?, ?, ?)",
                    (z[i].astype("<f4").tobytes(), hashes[i], db_text(sources[i]), box,
                     None if joined[i] < 0 else int(joined[i]), now)).lastrowid
            ids = np.array([known[h] for h in hashes], np.int64)
            group_of = dict(self.db.execute("SELECT id, group_id FROM group_faces"))
        groups = np.array([-1 if group_of[int(f)] is None else group_of[int(f)] for f in ids], np.int64)
        return Added(ids, groups, np.isin(np.arange(len(z)), fresh))

    def remove_faces(self, face_ids: Any) -> int:
        """Forget faces (and their links); groups left empty disappear. Returns how many were removed."""
        with transaction(self.db):
            st = self._state()
            rows = sorted(set(st.rows(face_ids, self.path).tolist()))
            self.db.executemany("DELETE FROM group_faces WHERE id = ?", [(int(st.ids[r]),) for r in rows])
            drop_empty(self.db)
        return len(rows)

    # --- clustering ----------------------------------------------------------------------------
    def recluster(self, method: str = "hdbscan", **options: Any) -> list[Group]:
        """Cluster all faces again, honouring every correction, keeping ids by maximum overlap.

        Args:
            method: "hdbscan", "dbscan" or "agglomerative" (see `facespace.people.clustering.cluster`).
            **options: passed to `facespace.people.clustering.cluster` (`eps`, `min_samples`,
                `min_cluster_size`, `n_clusters`, ...).

        Returns:
            The groups afterwards. The join radius for later `add`s becomes DBSCAN's eps, or for
            the other methods `JOIN_QUANTILE` of the nearest-neighbour distances inside groups.
        """
        import inspect

        from facespace.people.clustering import cluster, estimate_eps

        known = set(inspect.signature(cluster).parameters) - {"codes", "method", "metric"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise GalleryError(f"unknown clustering option {unknown[0]!r}; expected one of: {', '.join(sorted(known))}")
        with transaction(self.db):
            st = self._state()
            if len(st.ids) == 0:
                raise GalleryError(f"no faces in {self.path} to group; add faces first (`facespace groups add`)")
            labels = cluster(st.codes, method, metric=self.metric, **options)
            final = settle(self.db, st, labels, self.metric)
            radius = options.get("eps")
            if method == "dbscan" and radius is None and len(st.ids) > 2:
                radius = estimate_eps(st.codes, min(options.get("min_samples", 5), len(st.ids) - 1), metric=self.metric)
            if method != "dbscan":
                radius = join_radius(st.codes, final, self.metric)
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("groups_max_distance", "" if radius is None else str(radius)), ("groups_method", method),
                ("groups_options", json.dumps(options, default=str))])
        return self.groups()

    # --- corrections ---------------------------------------------------------------------------
    def _link(self, st: State, must: list, cannot: list) -> State:
        return store_links(self.db, st, must, cannot, self.code_size)

    def merge(self, a: int, b: int) -> Group:
        """Group `b` is the same person as group `a`: all its faces join `a` (which keeps its id).

        The merged faces are must-linked, so re-clustering keeps them together. A name of `b`
        moves to `a` when `a` has none.

        Raises:
            GalleryError: unknown group, a == b, two different names, or a cannot-link between them.
        """
        with transaction(self.db):
            st = self._state()
            if int(a) == int(b):
                raise GalleryError(f"cannot merge group {a} with itself; give two different groups")
            rows_a, rows_b = st.group_rows(a, self.path), st.group_rows(b, self.path)
            na, nb = st.names.get(int(a)), st.names.get(int(b))
            if na and nb:
                raise GalleryError(f"groups {a} ({na!r}) and {b} ({nb!r}) both have names; if they are one "
                                   "person, clear one name first (`facespace groups name GROUP --clear`)")
            st = self._link(st, star(np.concatenate([rows_a, rows_b])), [])
            if nb:
                self.db.execute("UPDATE groups SET name = NULL WHERE id = ?", (int(b),))
                self.db.execute("UPDATE groups SET name = ? WHERE id = ?", (nb, int(a)))
                st = self._state()
            labels = st.group.copy()
            labels[rows_b] = int(a)
            settle(self.db, st, labels, self.metric, forced={int(a): int(a)})
        return self.group(a)

    def split(self, group: int, face_ids: Any) -> tuple[Group, Group]:
        """These faces of `group` are another person: they become a new group.

        The group keeps its id and name with the other faces. Each part is must-linked and the
        two parts cannot-linked, so re-clustering keeps them apart; earlier must-links between the
        parts are removed (the latest correction wins).

        Returns:
            `(the group, the new group)`.

        Raises:
            GalleryError: unknown group, a face not in it, no faces, or all of its faces.
        """
        with transaction(self.db):
            st = self._state()
            rows = st.group_rows(group, self.path)
            part = np.unique(st.rows(face_ids, self.path))
            if len(part) == 0:
                raise GalleryError("no faces given to split off; pass the face ids of the other person")
            outside = np.setdiff1d(part, rows)
            if len(outside):
                raise GalleryError(f"face {int(st.ids[outside[0]])} is not in group {group}; "
                                   f"`facespace groups show {group}` lists its faces")
            rest = np.setdiff1d(rows, part)
            if len(rest) == 0:
                raise GalleryError(f"those are all the faces of group {group}; split off only some of them")
            a_ids, b_ids = st.ids[rest].tolist(), st.ids[part].tolist()
            self.db.executemany(
                "DELETE FROM group_links WHERE kind = 'must' AND face_a = ? AND face_b = ?",
                [(min(x, y), max(x, y)) for x in a_ids for y in b_ids])
            st = self._link(self._state(), star(rest) + star(part), [(int(rest[0]), int(part[0]))])
            labels = st.group.copy()
            labels[part] = labels.max() + 1
            final = settle(self.db, st, labels, self.metric, forced={int(group): int(group)})
            new_id = int(final[part[0]])
        return self.group(group), self.group(new_id)

    def name(self, group: int, name: str | None) -> Group:
        """Name a group (None clears the name). Its present faces become confirmed (must-linked).

        Raises:
            GalleryError: unknown group, a reserved or empty name, or a name another group has.
        """
        with transaction(self.db):
            st = self._state()
            rows = st.group_rows(group, self.path)
            if name is not None:
                name = check_name(name)
                other = self.db.execute("SELECT id FROM groups WHERE name = ? AND id != ?", (name, int(group))).fetchone()
                if other is not None:
                    raise GalleryError(f"{name!r} already names group {other[0]}; merge the two groups "
                                       f"(`facespace groups merge {other[0]} {group}`) or choose another name")
                self._link(st, star(rows), [])
            self.db.execute("UPDATE groups SET name = ? WHERE id = ?", (name, int(group)))
        return self.group(group)

    def must_link(self, face_a: int, face_b: int) -> None:
        """Two faces are one person: `face_b` (with the faces linked to it) joins `face_a`'s group."""
        with transaction(self.db):
            st = self._state()
            a, b = st.rows([face_a, face_b], self.path)
            st = self._link(st, [(int(a), int(b))], [])
            labels = st.group.copy()
            keep = int(labels[a] if labels[a] >= 0 else labels[b])
            target = keep if keep >= 0 else int(labels.max(initial=0)) + 1  # both ungrouped: a new group
            comp = must_components(len(st.ids), st.must)
            labels[comp == comp[a]] = target
            settle(self.db, st, labels, self.metric, forced={keep: keep} if keep >= 0 else None)

    def cannot_link(self, face_a: int, face_b: int) -> None:
        """Two faces are different people; a group holding both is split around them."""
        with transaction(self.db):
            st = self._state()
            a, b = st.rows([face_a, face_b], self.path)
            if a == b:
                raise GalleryError(f"face {face_a} cannot be a different person from itself; give two faces")
            st = self._link(st, [], [(int(a), int(b))])
            settle(self.db, st, st.group.copy(), self.metric)

    def unlink(self, face_a: int, face_b: int) -> int:
        """Remove the link between two faces; returns how many links were removed (0 or 1)."""
        lo, hi = sorted((int(face_a), int(face_b)))
        with transaction(self.db):
            return int(self.db.execute("DELETE FROM group_links WHERE face_a = ? AND face_b = ?", (lo, hi)).rowcount)

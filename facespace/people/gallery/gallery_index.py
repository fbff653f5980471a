"""The search index kept beside a gallery, so that naming a probe does not read every enrolled code.

A gallery `people.db` keeps `people.db.index`, an `Index` (`facespace.index`) of what its scoring
compares a probe with: every enrolled face (scoring "nearest", ids = face ids) or one centroid per
person (scoring "centroid" and "snorm", ids = person ids; `person_centroids` of their codes). An
S-norm gallery of the cosine metric indexes each person as `person_stats.snorm_items` of their
centroid and cohort statistics (kept by the gallery, `facespace.people.gallery.person_stats`),
lifted to one length (`radius`, kept in the snapshot; a person beyond it rebuilds the index) so that
l2 ranks them in S-norm order; of the l2 metric, their centroid, with everyone's statistics held in
memory beside it. SQLite stays the only truth. The file is a snapshot: its header records the
gallery's uuid and the generation of the change log (`facespace.people.gallery.changes`) it
reflects, with that log entry's random token. Opening it (`GalleryIndex.sync`, before every
identification) then:

- loads the snapshot when it is this gallery's, of this scoring and metric, and not ahead of the log;
- replays the log entries after its generation (faces removed and added, centroids of the people
  whose faces changed recomputed from their rows);
- checks that what it holds matches the rows (count and sum of ids) and otherwise, or when the file
  is missing, truncated, damaged, another gallery's or from another history, rebuilds it from the
  rows: a snapshot is never trusted, only caught up.

Within a process, every open `Gallery` of one file shares the index in memory (a web server that
opens the gallery per request loads the snapshot once), checked against the log the same way.

So enrolling, removing, rejecting or replacing never has to write the index: a crash between the
SQLite commit and any index write loses nothing, and two writers need no coordination beyond
SQLite's. The snapshot is rewritten (atomically) after a rebuild and once its log tail grows past
`SNAPSHOT_TAIL` of its size; once it is saved caught up to generation N, the change log before N
is pruned (`changes.prune_log`, a write transaction that never waits for the lock: a busy gallery
is pruned at a later identification). An index older than the log's start (another process's, held
in memory or copied) is rebuilt: a crash between the save and the pruning leaves a longer log.

Up to `EXACT_MAX_ITEMS` items the index is exact; beyond it, an HNSW graph: one probe against
10,000 codes took 12 ms exact on 2 shared cores, against 100,000 68 ms and against 1,000,000
940 ms, while through the graph a whole identification took 8 ms at 100,000 faces and 25 ms at a
million (`benchmarks/results/search_scale_gallery.md`, with the recall).
An index that grows (shrinks) past 1.5 times (half) that size by catching up is rebuilt.

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> from facespace.people.gallery.gallery import Gallery
    >>> g = Gallery(":memory:", PixelEncoder(size=4, channels=1))
    >>> _ = g.enroll("ann", np.random.default_rng(0).random((3, 4, 4, 1), dtype=np.float32), force=True)
    >>> len(GalleryIndex(g.db, ":memory:", metric="cosine", scoring="nearest", code_size=16).sync())
    3
"""

from __future__ import annotations

import sqlite3
import threading
import warnings
from pathlib import Path

import numpy as np

from facespace.errors import FacespaceError
from facespace.files import file_kind
from facespace.index import Index, IndexingError
from facespace.people.distances import person_centroids
from facespace.people.gallery.changes import changes_since, gallery_uuid, generation, log_start, log_token, prune_log
from facespace.people.gallery.person_stats import (PersonStats, lift_items, read_person_stats, snorm_items,
                                                   stats_current)
from facespace.people.gallery.store import read_rows, transaction

__all__ = ["EXACT_MAX_ITEMS", "GalleryIndex", "INDEXED_SCORINGS", "forget_held", "read_rows"]

INDEXED_SCORINGS = ("nearest", "centroid", "snorm")
EXACT_MAX_ITEMS = 50_000  # above this many faces (or centroids) a rebuilt index is an HNSW graph
# ef_search 4096: at 1M random faces one probe in 12.5 ms, the full scan's names for all 50 probes and its
# whole answer (5 candidates and distances) for 0.92 / 1.00 of known / stranger probes (1024: 6.4 ms and
# 0.60 / 0.32; 16384: 35.5 ms and 1.00 / 1.00); search_scale_gallery.md
HNSW_SETTINGS = {"M": 16, "ef_construction": 100, "ef_search": 4096}
SNAPSHOT_TAIL = 0.02  # rewrite the snapshot once the changes since it exceed this share of its items
SNAPSHOT_MIN_TAIL = 500  # ... and this many log entries
RADIUS_ROOM = 1.25  # S-norm's lifted vectors: the length given, over the longest vector at a rebuild


class _Held:
    """An index in memory, the generation it reflects and the log entry there (gallery uuid and
    token); shared by every `GalleryIndex` of one gallery file in a process, so a server that opens
    the gallery per request loads the snapshot once."""

    def __init__(self) -> None:
        self.index: Index | None = None
        self.generation = -1  # of the log, that `index` reflects
        self.saved_generation = -1  # of the snapshot file
        self.mark = ("", 0)  # (gallery uuid, token of the log entry at `generation`)
        self.foreign = False  # the snapshot's path holds an index that is not a gallery's: never written over
        self.stats: PersonStats | None = None  # "snorm": every indexed person's cohort statistics
        self.prune_due = 0  # the generation of the last snapshot saved, up to which the log may be pruned
        self.radius = 0.0  # "snorm", cosine: the length S-norm's vectors are lifted to (0: one is longer)
        self.lock = threading.RLock()


_HELD: dict[tuple[str, str, str], _Held] = {}


def forget_held() -> None:
    """Drop the indexes this process holds in memory (the next `sync` reads the snapshot file, as a
    new process would)."""
    _HELD.clear()


class GalleryIndex:
    """The index beside one open gallery, caught up with its rows on every `sync`.

    Args:
        db: the gallery's open SQLite connection (autocommit).
        path: the gallery file; the snapshot is `path + ".index"` (none for ":memory:").
        metric: the gallery's metric; scoring: one of `INDEXED_SCORINGS`; code_size: d.
    """

    def __init__(self, db: sqlite3.Connection, path: str, *, metric: str, scoring: str, code_size: int):
        if scoring not in INDEXED_SCORINGS:
            raise FacespaceError(f"a gallery index serves scoring {' or '.join(INDEXED_SCORINGS)}; not {scoring!r}")
        self.db, self.metric, self.scoring, self.code_size = db, metric, scoring, int(code_size)
        # what the index holds: codes or centroids (dim d, the gallery's metric), or S-norm's vectors
        self.snorm_ip = scoring == "snorm" and metric == "cosine"
        self.index_dim = 2 * self.code_size + 2 if self.snorm_ip else self.code_size
        self.index_metric = "l2" if self.snorm_ip else metric
        self.file = None if path == ":memory:" else Path(str(path) + ".index")
        self.held = _Held() if self.file is None else \
            _HELD.setdefault((str(self.file.resolve()), scoring, metric), _Held())
        self.rebuilt = 0  # how many times this object rebuilt from the rows (for tests and benchmarks)

    # the state lives in `self.held`, shared with the gallery's other open objects in this process
    index = property(lambda self: self.held.index, lambda self, v: setattr(self.held, "index", v))
    generation = property(lambda self: self.held.generation, lambda self, v: setattr(self.held, "generation", v))
    saved_generation = property(lambda self: self.held.saved_generation,
                                lambda self, v: setattr(self.held, "saved_generation", v))

    # --- keeping up ---------------------------------------------------------------------------
    def sync(self) -> Index:
        """The index, caught up with the gallery's rows (loaded, replayed or rebuilt as needed).

        Called inside a read transaction, the index matches the rows that transaction reads.

        Returns:
            The `Index`: ids are face ids ("nearest") or person ids ("centroid", "snorm"); None for
            an S-norm gallery whose person statistics are behind its rows (scan it in full).
        """
        with self.held.lock:
            return self._sync()

    def _sync(self) -> Index | None:
        own = not self.db.in_transaction  # a caller's read transaction keeps its snapshot for what it reads next
        if own:
            self.db.execute("BEGIN")  # one read snapshot: the rows and the log agree
        try:
            now = generation(self.db)
            if self.scoring == "snorm" and not stats_current(self.db, now):
                self.held.stats = None  # changed by an older facespace: scanned in full until its next change
                return None
            if self.index is not None and (self.generation > now or self.generation < log_start(self.db)
                                           or self.held.mark != self._mark(self.generation)):
                self.index = None  # another file at this path, another history of it, or older than the log
            caught_up = self.index is not None and self.generation == now
            if not caught_up:
                self._catch_up(now)
            if self.scoring == "snorm":
                self._catch_up_stats(now)
        finally:
            if own:
                self.db.execute("COMMIT")
        if caught_up:
            return self.index
        tail = self.generation - self.saved_generation
        if tail > 0 and tail >= max(SNAPSHOT_MIN_TAIL, SNAPSHOT_TAIL * len(self.index)) or self.saved_generation < 0:
            self.save()
        if own:
            self.prune()
        return self.index

    def _catch_up(self, now: int) -> None:
        """Inside the read transaction: the index loaded, replayed or rebuilt up to generation `now`."""
        if self.index is None:
            self._load(now)
        if self.index is not None and self.generation < now:
            self._replay()
        if self.index is None or not self._matches_rows() or self._outgrown():
            self._rebuild(now)
        self.held.mark = self._mark(self.generation)

    def _catch_up_stats(self, now: int) -> None:
        """"snorm": every indexed person's cohort statistics, read from the gallery (kept current by
        `_replay` once read)."""
        if self.held.stats is None:
            stats = read_person_stats(self.db)
            self.held.stats = stats if np.array_equal(stats.ids, np.sort(self.index.ids)) else None

    def prune(self) -> None:
        """Delete the change log entries before the last snapshot saved (`changes.prune_log`), unless
        another connection holds the write lock: a later sync tries again. Call outside any transaction."""
        due = self.held.prune_due
        if due <= 0 or self.db.in_transaction:
            return
        wait = int(self.db.execute("PRAGMA busy_timeout").fetchone()[0])
        self.db.execute("PRAGMA busy_timeout = 0")  # housekeeping never keeps an identification waiting
        try:
            with transaction(self.db):
                prune_log(self.db, due)
        except sqlite3.OperationalError as e:
            if not any(word in str(e) for word in ("locked", "busy", "readonly")):
                raise
            return
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {wait}")
        self.held.prune_due = 0

    def _mark(self, gen: int) -> tuple[str, int]:
        return gallery_uuid(self.db), log_token(self.db, gen)

    def _record(self) -> dict:
        return {"gallery_uuid": gallery_uuid(self.db), "generation": self.generation,
                "token": log_token(self.db, self.generation), "scoring": self.scoring, "metric": self.metric,
                **({"radius": self.held.radius} if self.snorm_ip else {})}

    def _load(self, now: int) -> None:
        """The snapshot file when it is this gallery's and not ahead of it, else nothing."""
        if self.file is None or not self.file.exists():
            return
        try:
            index = Index.load(self.file)
        except (IndexingError, OSError) as e:
            warnings.warn(f"the gallery index {self.file} is unreadable ({e}); rebuilding it from the gallery", stacklevel=3)
            return
        if not isinstance(index.model, dict) or "gallery" not in index.model:
            self.held.foreign = True
            warnings.warn(f"{self.file} is an index that is not this gallery's (`index build` made it?); it is left "
                          "as it is and the gallery's index is kept in memory only: move that file elsewhere",
                          stacklevel=3)
            return
        rec = index.model["gallery"] or {}
        gen = int(rec.get("generation", -1))
        if (rec.get("gallery_uuid") != gallery_uuid(self.db) or rec.get("scoring") != self.scoring
                or rec.get("metric") != self.metric or index.dim != self.index_dim or index.metric != self.index_metric
                or (self.snorm_ip and not rec.get("radius")) or not 0 <= gen <= now
                or gen < log_start(self.db) or rec.get("token") != log_token(self.db, gen)):
            return  # another gallery's, another history's, or older than the log reaches back: rebuilt
        if index.backend == "hnsw":  # this version's search width, whatever the file was saved with
            index.configure(ef_search=HNSW_SETTINGS["ef_search"])
        self.index, self.generation, self.saved_generation = index, gen, gen
        self.held.stats, self.held.radius = None, float(rec.get("radius") or 0.0)  # stats read once caught up

    def _replay(self) -> None:
        """Apply the log entries after `self.generation` to the index."""
        changes = changes_since(self.db, self.generation)
        index = self.index
        if self.scoring == "nearest":
            gone = changes.face_ids[np.isin(changes.face_ids, index.ids)]
            if len(gone):
                index.remove(gone)
            face_ids, _, codes = read_rows(self.db, changes.face_ids, self.code_size)
            index.add(codes, ids=face_ids)
        else:
            gone = changes.person_ids[np.isin(changes.person_ids, index.ids)]
            if len(gone):
                index.remove(gone)
            _, person_ids, codes = read_rows(self.db, changes.person_ids, self.code_size, column="person_id")
            if len(codes):
                people, centroids = person_centroids(codes, person_ids, metric=self.metric)
                index.add(self._vectors(people, centroids), ids=people)
            if self.held.stats is not None:  # "snorm": the changed people's statistics, read again
                self.held.stats = self.held.stats.replace(changes.person_ids, read_person_stats(self.db, changes.person_ids))
        self.generation = changes.generation

    def _matches_rows(self) -> bool:
        what = "id" if self.scoring == "nearest" else "DISTINCT person_id"  # centroid, snorm: people
        count, total = self.db.execute(f"SELECT COUNT({what}), COALESCE(SUM({what}), 0) FROM faces").fetchone()
        ids = self.index.ids
        return len(ids) == int(count) and int(ids.sum()) == int(total)

    def _outgrown(self) -> bool:
        """An exact index grown past 1.5 `EXACT_MAX_ITEMS`, a graph shrunk under half of it, or
        S-norm's vectors, one of them longer than the length they are lifted to."""
        n, backend = len(self.index), self.index.backend
        return ((backend == "exact" and n > 1.5 * EXACT_MAX_ITEMS) or (backend == "hnsw" and n < EXACT_MAX_ITEMS // 2)
                or (self.snorm_ip and self.held.radius <= 0))

    def _vectors(self, people: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """What the index holds for `(p,)` people of `(p, d)` centroids: them, or S-norm's vectors
        lifted to `radius` (set at a rebuild; 0 when one is longer: the index is rebuilt)."""
        if not self.snorm_ip:
            return centroids
        x = snorm_items(centroids, *read_person_stats(self.db, people).lookup(people))
        longest = float(np.linalg.norm(x.astype(np.float64), axis=1).max(initial=0.0))
        if self.index is None:  # a rebuild
            self.held.radius = RADIUS_ROOM * longest
        elif longest > self.held.radius:
            self.held.radius = 0.0
        return lift_items(x, self.held.radius)

    def _rebuild(self, now: int) -> None:
        self.index = None
        face_ids, person_ids, codes = read_rows(self.db, None, self.code_size)
        if self.scoring != "nearest" and len(codes):
            ids, vectors = person_centroids(codes, person_ids, metric=self.metric)
            vectors = self._vectors(ids, vectors)
        else:
            ids, vectors = face_ids, codes
        backend = "exact" if len(ids) <= EXACT_MAX_ITEMS else "hnsw"
        index = Index(self.index_dim, metric=self.index_metric, backend=backend,
                      **(HNSW_SETTINGS if backend == "hnsw" else {}))
        index.add(vectors, ids=ids)
        self.index, self.generation, self.saved_generation = index, now, -1
        self.held.stats = None
        self.rebuilt += 1

    def save(self) -> None:
        """Write the snapshot atomically; a gallery in a folder this process cannot write to goes on
        without one (it is rebuilt in memory when opened). The log before a snapshot saved is pruned
        (`prune`); an in-memory gallery has no file, and no other reader of its log."""
        if self.index is None or self.held.foreign or self.generation < log_start(self.db):
            return  # nothing to save, not ours to write, or older than the log: nobody could catch it up
        if self.file is None:
            self.saved_generation = self.held.prune_due = self.generation
            return
        self.index.model = {"gallery": self._record()}
        try:
            if self.file.exists() and file_kind(self.file) != "index":
                self.file.unlink()  # the gallery's own file name, too damaged to read (`_load` warned)
            self.index.save(self.file)
        except (OSError, IndexingError) as e:
            warnings.warn(f"could not write the gallery index {self.file} ({e}); it is kept in memory only", stacklevel=3)
            return
        self.saved_generation = self.held.prune_due = self.generation

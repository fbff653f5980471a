"""A gallery of enrolled people that names faces and rejects strangers.

The gallery is one SQLite file holding each enrolled face's code (never the model): enrolling
a person encodes their images and adds rows, no retraining. `identify` finds each probe's nearest
enrolled person and accepts the match only when its distance is within a threshold calibrated for
a target false-accept rate on the enrolled people themselves: for every enrolled face, its nearest
other face of the same person is a genuine score, and its nearest face of any other person is an
impostor score (as if that person were a stranger). The threshold is recalibrated inside the same
transaction as every change.

Durability: every change is one transaction (an interrupted enrol leaves the gallery as it was),
the journal is write-ahead (WAL) so other processes can read while one writes, and the file records
the model it was built with and refuses another.

Example:
    >>> from facespace.verify import PixelEncoder
    >>> rng = np.random.default_rng(0)
    >>> g = Gallery(":memory:", PixelEncoder(size=4, channels=1))
    >>> g.enroll("ann", rng.random((3, 4, 4, 1), dtype=np.float32))
    3
    >>> g.list()
    [('ann', 3)]
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from facespace.gallery_store import SCHEMA, SCHEMA_VERSION, GalleryError, check_name, model_fingerprint
from facespace.verify import as_images, calibrate_threshold, cross_distances

__all__ = ["Gallery", "GalleryError", "Identification", "enroll", "identify", "model_fingerprint", "open_set_scores"]

class Identification(NamedTuple):
    """One probe's answer.

    Attributes:
        name: the enrolled person, or None for a stranger.
        distance: distance to the nearest enrolled person.
        candidates: `[(name, distance)]` of the nearest people, nearest first.
    """

    name: str | None
    distance: float
    candidates: list[tuple[str, float]]


def open_set_scores(codes: np.ndarray, person: np.ndarray, *, metric: str = "cosine", chunk: int = 1024):
    """Genuine and impostor scores of enrolled faces, as if each person in turn were a probe.

    Args:
        codes: `(n, d)` enrolled codes.
        person: `(n,)` int person of each code.

    Returns:
        `(genuine, impostor)`: for each face, the distance to its nearest other face of the same
        person (faces of people with one image have none) and to its nearest face of anyone else.
    """
    genuine, impostor = [], []
    for i in range(0, len(codes), chunk):
        d = cross_distances(codes[i : i + chunk], codes, metric=metric)  # (c, n)
        rows = np.arange(d.shape[0])
        d[rows, i + rows] = np.inf  # a face is not its own neighbour
        same = person[i : i + chunk, None] == person[None, :]
        g = np.where(same, d, np.inf).min(1)
        m = np.where(same, np.inf, d).min(1)
        genuine.append(g[np.isfinite(g)])
        impostor.append(m[np.isfinite(m)])
    return np.concatenate(genuine), np.concatenate(impostor)


class Gallery:
    """Enrolled people in a SQLite file.

    Args:
        path: the gallery file (created on first enrol); ":memory:" for a throw-away one.
        model: the `Encoder` that makes the codes; may be None to list or remove people.
        metric: "cosine" or "l2" (fixed when the gallery is created).
        target_far: false-accept rate the stranger threshold is calibrated for (fixed at creation;
            change it with `calibrate`).

    Example:
        >>> g = Gallery("people.db", model)                # doctest: +SKIP
        >>> g.enroll("Ada", ["ada1.jpg", "ada2.jpg"])       # doctest: +SKIP
        >>> g.identify(["probe.jpg"])[0].name              # doctest: +SKIP
        'Ada'
    """

    def __init__(self, path: str | os.PathLike, model: Any = None, *, metric: str = "cosine", target_far: float = 0.01):
        self.path = str(path)
        self.model = model
        exists = self.path == ":memory:" or Path(self.path).exists()
        if not exists and model is None:
            raise GalleryError(f"no gallery at {self.path}; enrol someone first (with a model) to create it")
        if exists and self.path != ":memory:" and Path(self.path).is_dir():
            raise GalleryError(f"{self.path} is a folder; pass a gallery file such as people.db")
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise GalleryError(f"{self.path} is not a facespace gallery ({e}); pass a gallery file or a new name") from None
        if tables and "meta" not in tables:
            raise GalleryError(f"{self.path} is an SQLite file but not a facespace gallery; pass another file name")
        if not tables:
            self._create(metric, target_far)
        self.meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if int(self.meta.get("schema_version", 0)) > SCHEMA_VERSION:
            raise GalleryError(f"{self.path} was written by a newer facespace; upgrade facespace")
        if model is not None:
            self._check_model(model)

    # --- setup ---------------------------------------------------------------------------------
    def _create(self, metric: str, target_far: float) -> None:
        if metric not in ("cosine", "l2"):
            raise GalleryError(f"unknown metric {metric!r}; expected one of: cosine, l2")
        if not 0.0 <= target_far < 1.0:
            raise GalleryError(f"target_far must be in [0, 1); got {target_far}")
        m = self.model
        from facespace.checkpoint import model_hash

        info = {
            "schema_version": SCHEMA_VERSION,
            "model_fingerprint": model_fingerprint(m),
            "model_hash": model_hash(m) or "",
            "model_kind": getattr(m, "kind", type(m).__name__),
            "model_path": (getattr(m, "checkpoint_info", None) or {}).get("path", ""),
            "code_size": int(m.code_size),
            "image_shape": json.dumps(list(m.image_shape)),
            "metric": metric,
            "target_far": target_far,
            "threshold": "",
            "threshold_source": "auto",
            "created": time.time(),
        }
        with self._transaction():
            for statement in SCHEMA.split(";"):  # executescript would commit early
                if statement.strip():
                    self.db.execute(statement)
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in info.items()])

    def _check_model(self, model: Any) -> None:
        want = self.meta.get("model_fingerprint")
        got = model_fingerprint(model)
        if want != got:
            raise GalleryError(
                f"gallery {self.path} was built with another model ({self.meta.get('model_kind')} "
                f"{self.meta.get('model_path') or ''}, fingerprint {want}); this model's is {got}. "
                "Open it with that model, or enrol into a new gallery file"
            )

    def _transaction(self):
        db = self.db

        class _Tx:
            def __enter__(self_):
                db.execute("BEGIN IMMEDIATE")  # take the write lock now, so readers never see half

            def __exit__(self_, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading -------------------------------------------------------------------------------
    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def threshold(self) -> float | None:
        """The stranger threshold (largest distance still accepted), None before two people."""
        value = dict(self.db.execute("SELECT key, value FROM meta WHERE key = 'threshold'")).get("threshold", "")
        return float(value) if value else None

    def list(self) -> list[tuple[str, int]]:
        """`[(name, number of enrolled images)]` sorted by name."""
        return [(n, int(c)) for n, c in self.db.execute(
            "SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name")]

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM people").fetchone()[0])

    def codes(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """`(codes (n, d) float32, person index (n,) int, names)` of every enrolled face."""
        d = int(self.meta["code_size"])
        self.db.execute("BEGIN")  # one snapshot for both reads
        try:
            people = list(self.db.execute("SELECT id, name FROM people ORDER BY id"))
            rows = list(self.db.execute("SELECT person_id, code FROM faces ORDER BY id"))
        finally:
            self.db.execute("COMMIT")
        index = {pid: i for i, (pid, _) in enumerate(people)}
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), d).copy()
        return codes, np.array([index[r[0]] for r in rows], np.int64), [n for _, n in people]

    # --- changing ------------------------------------------------------------------------------
    def _encode(self, images: Any) -> tuple[np.ndarray, list[str], list[str]]:
        """`(codes, sources, image hashes)`; the hash is of the pixels (codes vary in the last bits)."""
        if self.model is None:
            raise GalleryError("this gallery was opened without a model; pass the model it was built with")
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        sources = [str(p) for p in images] if isinstance(images, (list, tuple)) and images and \
            isinstance(images[0], (str, os.PathLike)) else None
        x = as_images(self.model, images)
        z = np.asarray(self.model.encode(x), np.float32)
        if sources is None:
            sources = [f"array[{i}]" for i in range(len(z))]
        return z, sources, [hashlib.sha256(np.ascontiguousarray(img, "<f4").tobytes()).hexdigest() for img in x]

    def enroll(self, name: str, images: Any, *, replace: bool = False) -> int:
        """Add a person, or more images of an enrolled person.

        Args:
            name: the person's name ("unknown" is reserved for strangers).
            images: `(n, H, W, C)` float32 at the model's shape, or image paths.
            replace: drop the person's earlier images instead of adding to them.

        Returns:
            How many images the person has now.
        """
        return self.enroll_many({name: images}, replace=replace)[check_name(name)]

    def enroll_many(self, people: dict[str, Any], *, replace: bool = False) -> dict[str, int]:
        """Enrol several people in one transaction (and one recalibration).

        Args:
            people: `{name: images}`, images as in `enroll`.
            replace: drop each person's earlier images.

        Returns:
            `{name: how many images the person has now}`.
        """
        batches = []
        for name, images in people.items():
            name = check_name(name)
            z, sources, hashes = self._encode(images)
            if len(set(hashes)) < len(hashes):
                raise GalleryError(f"the images given for {name!r} contain the same image twice; pass each once")
            batches.append((name, z, sources, hashes))
        seen: dict[str, str] = {}
        for name, _, sources, hashes in batches:
            for h, src in zip(hashes, sources):
                if seen.setdefault(h, name) != name:
                    raise GalleryError(f"{src} is given for both {seen[h]!r} and {name!r}; give each image to one person")
        now, counts = time.time(), {}
        with self._transaction():
            for name, z, sources, hashes in batches:
                counts[name] = self._add(name, z, sources, hashes, replace, now)
            self._recalibrate()
        return counts

    def _add(self, name: str, z: np.ndarray, sources: list[str], hashes: list[str], replace: bool, now: float) -> int:
        """Inside a transaction: one person's rows."""
        row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is not None and replace:
            self.db.execute("DELETE FROM faces WHERE person_id = ?", (row[0],))
        for h, src in zip(hashes, sources):
            dup = self.db.execute("SELECT p.name, f.source FROM faces f JOIN people p ON p.id = f.person_id "
                                  "WHERE f.code_hash = ?", (h,)).fetchone()
            if dup is not None:
                raise GalleryError(f"{src} is already enrolled as {dup[0]!r} (from {dup[1]}); nothing was added. "
                                   + ("Leave it out" if dup[0] == name else f"Remove it from {dup[0]!r} first"))
        pid = row[0] if row is not None else \
            self.db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, now)).lastrowid
        self.db.executemany(
            "INSERT INTO faces (person_id, code, code_hash, source, added) VALUES (?, ?, ?, ?, ?)",
            [(pid, c.astype("<f4").tobytes(), h, s, now) for c, h, s in zip(z, hashes, sources)])
        return int(self.db.execute("SELECT COUNT(*) FROM faces WHERE person_id = ?", (pid,)).fetchone()[0])

    def remove(self, name: str) -> int:
        """Forget a person. Returns how many images were removed."""
        with self._transaction():
            row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"{name!r} is not enrolled in {self.path}; `facespace people list` shows who is")
            n = self.db.execute("SELECT COUNT(*) FROM faces WHERE person_id = ?", (row[0],)).fetchone()[0]
            self.db.execute("DELETE FROM people WHERE id = ?", (row[0],))
            self._recalibrate()
        return int(n)

    def calibrate(self, target_far: float | None = None, *, max_distance: float | None = None) -> float | None:
        """Recalibrate the stranger threshold for `target_far`, or fix it at `max_distance`.

        Returns:
            The threshold now in force (None while fewer than two people are enrolled).
        """
        with self._transaction():
            if target_far is not None:
                if not 0.0 <= target_far < 1.0:
                    raise GalleryError(f"target_far must be in [0, 1); got {target_far}")
                self._set_meta(target_far=target_far, threshold_source="auto")
            if max_distance is not None:
                self._set_meta(threshold=float(max_distance), threshold_source="manual")
            self._recalibrate()
        return self.threshold

    def set_max_distance(self, name: str, max_distance: float | None) -> None:
        """A person's own threshold (None: use the gallery's)."""
        with self._transaction():
            cur = self.db.execute("UPDATE people SET max_distance = ? WHERE name = ?", (max_distance, name))
            if cur.rowcount == 0:
                raise GalleryError(f"{name!r} is not enrolled in {self.path}")

    def _set_meta(self, **values: Any) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])
        self.meta.update({k: str(v) for k, v in values.items()})

    def _recalibrate(self) -> None:
        """Inside a transaction: recompute the stranger threshold from the enrolled faces."""
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta.get("threshold_source") == "manual":
            return
        d = int(meta["code_size"])
        rows = list(self.db.execute("SELECT person_id, code FROM faces"))
        person = np.array([r[0] for r in rows], np.int64)
        if len(np.unique(person)) < 2:
            self._set_meta(threshold="", calibration="")
            return
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), d)
        genuine, impostor = open_set_scores(codes, person, metric=meta["metric"])
        far = float(meta["target_far"])
        t = calibrate_threshold(impostor, np.zeros(len(impostor), bool), target_far=far)
        tar = float((genuine <= t).mean()) if len(genuine) else float("nan")
        self._set_meta(threshold=t, calibration=json.dumps(
            {"target_far": far, "impostor_scores": len(impostor), "genuine_scores": len(genuine),
             "genuine_accept_rate": tar}))

    # --- identifying ---------------------------------------------------------------------------
    def identify(self, images: Any, *, k: int = 5, max_distance: float | None = None) -> list[Identification]:
        """Name each probe face, or None for a stranger.

        Args:
            images: `(n, H, W, C)` float32 at the model's shape, or image paths.
            k: how many candidate people to report per probe.
            max_distance: override the calibrated threshold.

        Returns:
            One `Identification` per probe.
        """
        codes, person, names = self.codes()
        if len(codes) == 0:
            raise GalleryError(f"gallery {self.path} has nobody enrolled; enrol people with `facespace people enroll`")
        threshold = max_distance if max_distance is not None else self.threshold
        if threshold is None:
            raise GalleryError(
                f"gallery {self.path} has only {len(names)} person enrolled; the stranger threshold is calibrated "
                "from two or more people: enrol more people or pass max_distance")
        per_person = dict(self.db.execute("SELECT name, max_distance FROM people WHERE max_distance IS NOT NULL"))
        z, _, _ = self._encode(images)
        order_by_person = np.argsort(person, kind="stable")
        present, starts = np.unique(person[order_by_person], return_index=True)
        out = []
        for i in range(0, len(z), 1024):
            d = cross_distances(z[i : i + 1024], codes[order_by_person], metric=self.metric)  # (q, n)
            best = np.full((len(d), len(names)), np.inf)
            best[:, present] = np.minimum.reduceat(d, starts, axis=1)  # nearest face of each person
            order = np.argsort(best, axis=1, kind="stable")[:, :k]
            for row, idx in zip(best, order):
                cands = [(names[j], float(row[j])) for j in idx if np.isfinite(row[j])]
                top, dist = cands[0]
                limit = per_person.get(top, threshold) if max_distance is None else max_distance
                out.append(Identification(top if dist <= limit else None, dist, cands))
        return out


def identify(model: Any, images: Any, gallery: str | os.PathLike, **options: Any) -> list[Identification]:
    """`Gallery(gallery, model).identify(images, **options)` in one call."""
    with Gallery(gallery, model) as g:
        return g.identify(images, **options)


def enroll(model: Any, name: str, images: Any, gallery: str | os.PathLike, *, replace: bool = False) -> int:
    """`Gallery(gallery, model).enroll(name, images, replace=replace)` in one call."""
    with Gallery(gallery, model) as g:
        return g.enroll(name, images, replace=replace)

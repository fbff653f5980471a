"""What a gallery file holds: the SQLite schema, the model fingerprint it records, valid names.

Schema version 2. `meta` holds key/value facts (model fingerprint, metric, threshold, target FAR,
calibration summary); `people` one row per person with an optional own threshold; `faces` one
row per enrolled image (its code as float32 bytes and a hash of its pixels); `rejections` and
`links` are the corrections of issue 10 ("not this person", must-link / cannot-link).

Version 2 adds the face groups of `facespace.people.groups.groups` (clusters of faces that are not enrolled
people): `groups` (ids never reused, an optional unique name), `group_faces` (one row per face:
code, pixel hash, source, box, group or NULL for ungrouped) and `group_links` (must-link /
cannot-link between group faces). `migrate` upgrades a version-1 file in place, in one transaction,
leaving every version-1 table as it was.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from facespace.checkpoint import model_hash, weights_hash
from facespace.errors import FacespaceError
from facespace.models.registry import extra_names
from facespace.people.cohort_norm import CohortNorm
from facespace.people.distances import SCORINGS
from facespace.protocol import METRICS, model_kind

SCHEMA_VERSION = 2
RESERVED_NAMES = ("unknown",)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    max_distance REAL,              -- per-person threshold (issue 10), NULL for the gallery one
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    code BLOB NOT NULL,             -- (d,) float32 little-endian
    code_hash TEXT NOT NULL UNIQUE, -- hash of the image's pixels: one image is enrolled once
    source TEXT,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_person ON faces(person_id);
-- corrections (issue 10): "not this person" feedback on an identification
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    code BLOB NOT NULL,
    source TEXT,
    created REAL NOT NULL
);
-- corrections (issue 10): must-link / cannot-link between faces for re-clustering
CREATE TABLE IF NOT EXISTS links (
    id INTEGER PRIMARY KEY,
    face_a INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    face_b INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),
    created REAL NOT NULL
);
"""

# version 2: face groups (issue 10). No semicolon may appear inside a statement or comment: the
# schema is run statement by statement, split at semicolons.
GROUPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so an id always means one group
    name TEXT UNIQUE,                      -- NULL until a person names it
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS group_faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code BLOB NOT NULL,                    -- (d,) float32 little-endian
    code_hash TEXT NOT NULL UNIQUE,        -- hash of the pixels (or of the code): each face once
    source TEXT,
    box TEXT,                              -- JSON [x, y, w, h] in the photo, NULL for a whole image
    group_id INTEGER REFERENCES groups(id) ON DELETE SET NULL,  -- NULL: ungrouped (noise)
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS group_faces_group ON group_faces(group_id);
CREATE TABLE IF NOT EXISTS group_links (
    id INTEGER PRIMARY KEY,
    face_a INTEGER NOT NULL REFERENCES group_faces(id) ON DELETE CASCADE,
    face_b INTEGER NOT NULL REFERENCES group_faces(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),
    created REAL NOT NULL,
    UNIQUE (face_a, face_b)                -- face_a < face_b
);
"""
SCHEMA = SCHEMA + GROUPS_SCHEMA


class GalleryError(FacespaceError):
    """A gallery file that cannot be used as asked (other model, empty, unknown person, ...)."""


# the gallery records `weights_hash`: it survives the threshold being written into the checkpoint
model_fingerprint = weights_hash


def check_name(name: Any) -> str:
    """A person's name, stripped; refuses empty, reserved and multi-line names."""
    if not isinstance(name, str) or not name.strip():
        raise GalleryError("a person's name must be a non-empty string")
    name = name.strip()
    if name.lower() in RESERVED_NAMES:
        raise GalleryError(f"{name!r} is reserved for strangers; choose another name")
    if any(c in name for c in "\n\r\t"):
        raise GalleryError(f"{name!r} contains a line break or tab; use a one-line name")
    return name


def connect(path: str) -> tuple[sqlite3.Connection, set[str]]:
    """Open a gallery file for autocommit use (WAL journal, full sync, foreign keys) and list its tables.

    Raises:
        GalleryError: a file that is not SQLite, or an SQLite file that is not a gallery.
    """
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")  # file names need not be UTF-8 (`db_text`)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        damage = [row[0] for row in db.execute("PRAGMA quick_check")] if tables else ["ok"]
    except sqlite3.DatabaseError as e:
        raise GalleryError(f"{path} is not a facespace gallery, or is damaged ({e}); restore it from a backup, "
                           "or pass another file") from None
    if damage != ["ok"]:
        db.close()
        raise GalleryError(f"{path} is damaged ({damage[0]}); restore it from a backup (nothing was read or written)")
    if tables and "meta" not in tables:
        raise GalleryError(f"{path} is an SQLite file but not a facespace gallery; pass another file name")
    return db, tables


def open_gallery(path: str, model: Any, *, create: bool, metric: str, target_far: float, scoring: str | None,
                 cohort: Any) -> tuple[sqlite3.Connection, dict[str, str], bool]:
    """Open the gallery file at `path`, laying it out for `model` when it is new.

    Returns:
        `(connection, meta rows, new)`: `new` when this call created the file (":memory:" never is).

    Raises:
        GalleryError: no file and no model (or `create` False), a folder, a file of a newer
            facespace, anything `connect` or `create_gallery` refuses (a file that could not be
            laid out is removed again).
    """
    exists = path == ":memory:" or Path(path).exists()
    if not exists and (model is None or not create):
        raise GalleryError(f"no gallery at {path}; enrol someone first (with a model) to create it")
    if exists and path != ":memory:" and Path(path).is_dir():
        raise GalleryError(f"{path} is a folder; pass a gallery file such as people.db")
    new = not exists and path != ":memory:"
    db, tables = connect(path)
    if not tables:
        try:
            create_gallery(db, model, metric=metric, target_far=target_far, scoring=scoring, cohort=cohort)
        except Exception:
            db.close()  # a gallery that could not be laid out leaves no file behind
            if new:
                remove_gallery_files(path)
            raise
    meta = dict(db.execute("SELECT key, value FROM meta"))
    if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
        raise GalleryError(f"{path} was written by a newer facespace; upgrade facespace")
    return db, meta, new


def recorded_model(path: str | Path, *, other_than: str | None = None) -> str | None:
    """What names the model the gallery file at `path` was built with, for commands given none: its
    built-in name (`model_builtin`), else its checkpoint file where that still exists, else the kind
    of an extra's model (a gallery of `dlib` written before names were recorded); None when there is
    no gallery file or it records none of these (the caller's default then meets the gallery's check),
    or when its model's fingerprint is `other_than` (a model the caller holds already).
    """
    if str(path) == ":memory:" or not Path(path).is_file():
        return None
    try:  # four rows read, no checks: opening the gallery afterwards checks the whole file once
        db = sqlite3.connect(str(path), timeout=30.0)
        db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        try:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('model_builtin', 'model_path', "
                                   "'model_kind', 'model_fingerprint')"))
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None  # not a gallery, or damaged: opening it says which
    if other_than is not None and meta.get("model_fingerprint") == other_than:
        return None
    if meta.get("model_builtin"):
        return meta["model_builtin"]
    if meta.get("model_path") and Path(meta["model_path"]).exists():
        return meta["model_path"]
    return meta["model_kind"] if meta.get("model_kind") in extra_names() else None


def remove_gallery_files(path: str) -> None:
    """Delete a gallery file and its write-ahead journal files."""
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def db_text(text: str | None) -> bytes | None:
    """A source path as stored: its file-system bytes, inserted with `CAST(? AS TEXT)`, so a name
    that is not UTF-8 (kept by Python as surrogates) is stored and read back exactly."""
    return None if text is None else str(text).encode("utf-8", "surrogateescape")


def model_impostors(model: Any, metric: str) -> dict[str, Any] | None:
    """The impostor-distance record a model carries for `metric` (`extra["impostors"][metric]`), or None."""
    extra = (getattr(model, "checkpoint_info", None) or {}).get("extra") or {}
    return (extra.get("impostors") or {}).get(metric)


def model_cohort(model: Any) -> dict[str, Any] | None:
    """The cohort a model carries for S-norm scoring (`extra["gallery"]["cohort"]`: `path` of an
    `(m, d)` .npy of codes of outside people, `top_fraction`, `source`), or None."""
    extra = (getattr(model, "checkpoint_info", None) or {}).get("extra") or {}
    cohort = (extra.get("gallery") or {}).get("cohort")
    if not cohort or not cohort.get("path"):
        return None
    return {**cohort, "codes": np.load(cohort["path"]).astype(np.float32)}


def cohort_text(codes: np.ndarray, top_fraction: float, source: str) -> str:
    """A cohort as the gallery's meta row keeps it: JSON with the codes as base64 float16."""
    z = np.asarray(codes, np.float32)
    return json.dumps({"top_fraction": float(top_fraction), "source": source, "shape": list(z.shape),
                       "codes": base64.b64encode(z.astype("<f2").tobytes()).decode("ascii")})


def read_cohort(text: str, metric: str) -> CohortNorm:
    """The fitted `CohortNorm` of a gallery's "cohort" meta row (`cohort_text`)."""
    info = json.loads(text)
    codes = np.frombuffer(base64.b64decode(info["codes"]), "<f2").reshape(info["shape"]).astype(np.float32)
    return CohortNorm(top_fraction=info["top_fraction"], metric=metric).fit(codes)


def model_scoring(model: Any) -> str:
    """How a gallery of this model scores a person by default: the model's recommendation
    (`extra["gallery"]["scoring"]`, chosen on a dev split), else "nearest"."""
    extra = (getattr(model, "checkpoint_info", None) or {}).get("extra") or {}
    return (extra.get("gallery") or {}).get("scoring", "nearest")


def create_gallery(db: sqlite3.Connection, model: Any, *, metric: str, target_far: float,
                   scoring: str | None = None, cohort: Any = None) -> None:
    """Lay out a new gallery in `db`: the schema, and the meta rows that bind it to `model`.

    Args:
        cohort: for scoring "snorm", `(m, d)` codes of people outside the gallery (default: the
            cohort the model carries); kept in the gallery, so it scores the same on any machine.

    Raises:
        GalleryError: an unknown metric or a false-accept rate outside [0, 1); scoring "snorm"
            with no cohort given or carried by the model.
    """
    if metric not in METRICS:
        raise GalleryError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")
    if not 0.0 <= target_far < 1.0:
        raise GalleryError(f"target_far must be in [0, 1); got {target_far}")
    scoring = scoring or model_scoring(model)
    if scoring not in SCORINGS:
        raise GalleryError(f"unknown scoring {scoring!r}; expected one of: {', '.join(SCORINGS)}")
    cohort_row = ""
    impostors_key = metric
    if scoring == "snorm":
        carried = model_cohort(model) if cohort is None else None
        if cohort is None and carried is None:
            raise GalleryError("scoring 'snorm' needs a cohort of codes of people outside the gallery, and this model "
                               "carries none; pass cohort= (Python) or choose --scoring centroid")
        if carried is not None:
            cohort_row = cohort_text(carried["codes"], carried.get("top_fraction", 0.6), carried.get("source", "the model"))
            impostors_key = f"{metric}+snorm"  # the model's impostors were measured against its own cohort
        else:
            given = cohort if isinstance(cohort, CohortNorm) else CohortNorm(metric=metric).fit(cohort)
            cohort_row = cohort_text(given.cohort_, given.top_fraction, "given")
            impostors_key = ""  # not the cohort the model's record was measured against
    info = {
        "schema_version": SCHEMA_VERSION,
        "model_fingerprint": model_fingerprint(model),
        "model_hash": model_hash(model) or "",
        "model_kind": model_kind(model),
        "model_path": (getattr(model, "checkpoint_info", None) or {}).get("path") or "",
        # a built-in or extra model's name: commands on this gallery use it when no model is named
        "model_builtin": (getattr(model, "checkpoint_info", None) or {}).get("builtin") or "",
        # the model's own impostor distances, measured on people it never saw: the stranger threshold
        # of a gallery too small to calibrate itself (`facespace.people.gallery.matching`)
        "model_impostors": json.dumps(model_impostors(model, impostors_key) if impostors_key else None),
        "code_size": int(model.code_size),
        "image_shape": json.dumps(list(model.image_shape)),
        "metric": metric,
        "scoring": scoring,  # a person's distance: to their nearest enrolled face, their centroid, or S-normed
        "cohort": cohort_row,  # scoring snorm: the outside faces the distances are normalised against
        "target_far": target_far,
        "threshold": "",
        "threshold_source": "auto",
        "created": time.time(),
    }
    with transaction(db):
        for statement in statements(SCHEMA):
            db.execute(statement)
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in info.items()])


def statements(schema: str) -> list[str]:
    """The statements of a schema text (`executescript` would commit an open transaction)."""
    return [st for st in schema.split(";") if st.strip()]


def migrate(db: sqlite3.Connection, path: str = "the gallery") -> int:
    """Upgrade an open gallery file to `SCHEMA_VERSION` in place; returns the version it had.

    Version 1 -> 2 adds the group tables and changes nothing else, in one transaction (an
    interrupted migration leaves a version-1 file). Call it outside any transaction.

    Raises:
        GalleryError: a file written by a newer facespace.
    """
    db.execute("BEGIN IMMEDIATE")  # the write lock first: two processes migrating take turns
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None else 1
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{path} was written by a newer facespace (schema {version}); upgrade facespace")
        if version < 2:
            for statement in statements(GROUPS_SCHEMA):
                db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version


class transaction:
    """`with transaction(db):` one write transaction (BEGIN IMMEDIATE), rolled back on error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")  # take the write lock now, so readers never see half
        return self.db

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def read_codes(db: sqlite3.Connection, code_size: int, table: str = "faces") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`(codes (n, d) float32, person index (n,) int into names, names)` of a gallery's `faces` or
    `rejections` rows, read in one snapshot (people in id order)."""
    db.execute("BEGIN")
    try:
        people = list(db.execute("SELECT id, name FROM people ORDER BY id"))
        rows = list(db.execute(f"SELECT person_id, code FROM {table} ORDER BY id"))
    finally:
        db.execute("COMMIT")
    index = {pid: i for i, (pid, _) in enumerate(people)}
    codes = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), code_size).copy()
    return codes, np.array([index[r[0]] for r in rows], np.int64), [n for _, n in people]


def read_rows(db: sqlite3.Connection, ids: np.ndarray | None, code_size: int, *, column: str = "id"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(face ids (m,) int64, person ids (m,) int64, codes (m, d) float32)` of the faces whose
    `column` ("id" or "person_id") is in `ids` (all faces for None), in face id order."""
    sql = "SELECT id, person_id, code FROM faces"
    args: tuple = ()
    if ids is not None:
        sql += f" WHERE {column} IN (SELECT value FROM json_each(?))"
        args = (json.dumps(np.asarray(ids, np.int64).tolist()),)
    rows = list(db.execute(sql + " ORDER BY id", args))
    face_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    person_ids = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    codes = np.frombuffer(b"".join(r[2] for r in rows), "<f4").reshape(len(rows), code_size).astype(np.float32)
    return face_ids, person_ids, codes

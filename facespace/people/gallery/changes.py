"""The gallery's change log: every face added or removed, in the order SQLite committed it.

Two SQLite triggers on `faces` write one `face_log` row per inserted or deleted face (a person
removed deletes their faces by cascade, which fires the triggers too), inside the transaction that
made the change: the log can never disagree with the rows. Its `seq` (AUTOINCREMENT, never reused)
is the gallery's generation. Whatever is kept beside the gallery and derived from its faces (the
search index of `facespace.people.gallery.gallery_index`, the sampled calibration of
`facespace.people.gallery.sampled`) records the generation it reflects and catches up by reading
the log's tail, so it is rebuilt only when it cannot be caught up.

The log is installed on a gallery's first open by this version (`ensure_log`, one transaction
that also gives the gallery a random `gallery_uuid`); faces enrolled before then are in the rows
but not the log, which is why a snapshot is always built from the rows, never from the log.

The log is pruned (`prune_log`) once a snapshot file is saved caught up to generation N: entries
before N are deleted, entry N itself stays (its token names the snapshot), and the meta row
`log_start` records N. The readers the gallery file holds itself (the sampled calibration, the
person statistics of S-norm: their generations in the meta rows `LOG_READERS`) bound the pruning;
anything else derived from the log, older than `log_start` (another process's index in memory, an
older copy of the snapshot), can no longer be caught up and is rebuilt from the rows.

Example:
    >>> import sqlite3
    >>> from facespace.people.gallery.store import create_gallery
    >>> from facespace.models.pixels import PixelEncoder
    >>> db = sqlite3.connect(":memory:", isolation_level=None)
    >>> create_gallery(db, PixelEncoder(size=2, channels=1), metric="cosine", target_far=0.01)
    >>> ensure_log(db); generation(db)
    0
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import NamedTuple

import numpy as np

from facespace.people.gallery.store import transaction

__all__ = ["Changes", "LOG_READERS", "ensure_log", "has_log", "gallery_uuid", "generation", "changes_since",
           "log_start", "log_token", "prune_log"]

# meta rows in which what the gallery file keeps derived from the log records the generation it reflects
LOG_READERS = ("sample_generation", "person_stats_generation")

LOG_STATEMENTS = (
    # token: a random number per entry, so a snapshot can tell this history from another one that
    # reached the same seq (a gallery file restored from a backup and changed again)
    "CREATE TABLE IF NOT EXISTS face_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, face_id INTEGER NOT NULL, "
    "person_id INTEGER NOT NULL, added INTEGER NOT NULL, token INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS face_log_insert AFTER INSERT ON faces BEGIN "
    "INSERT INTO face_log (face_id, person_id, added, token) VALUES (new.id, new.person_id, 1, random()); END",
    "CREATE TRIGGER IF NOT EXISTS face_log_delete AFTER DELETE ON faces BEGIN "
    "INSERT INTO face_log (face_id, person_id, added, token) VALUES (old.id, old.person_id, 0, random()); END",
)


class Changes(NamedTuple):
    """What changed in a gallery's faces after some generation.

    Attributes:
        face_ids: `(c,)` int64 distinct ids of faces added or removed (an id may be reused by
            SQLite after its face was removed, so each is looked up again in the rows).
        person_ids: `(p,)` int64 distinct people whose faces changed.
        added: `(c,)` bool, per id of `face_ids`, whether its last log entry is an insert.
        generation: the generation these changes lead to.
    """

    face_ids: np.ndarray
    person_ids: np.ndarray
    added: np.ndarray
    generation: int


def has_log(db: sqlite3.Connection) -> bool:
    """Whether this gallery file has its change log (triggers included) and uuid."""
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name IN "
                                      "('face_log', 'face_log_insert', 'face_log_delete')")}
    return len(names) == 3 and db.execute("SELECT 1 FROM meta WHERE key = 'gallery_uuid'").fetchone() is not None


def ensure_log(db: sqlite3.Connection) -> None:
    """Install the change log and the gallery's uuid if this gallery file has none (one transaction).

    Call it outside any transaction; a file that already has them is left untouched (no write lock),
    and so is one this process cannot write (`has_log` stays False: no index is kept for it).
    """
    if has_log(db):
        return
    try:
        with transaction(db):
            for statement in LOG_STATEMENTS:
                db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('gallery_uuid', ?)", (uuid.uuid4().hex,))
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e):  # a read-only file: identification scans every row, as before
            raise


def gallery_uuid(db: sqlite3.Connection) -> str:
    """The random id given to this gallery file when its log was installed."""
    row = db.execute("SELECT value FROM meta WHERE key = 'gallery_uuid'").fetchone()
    return row[0] if row else ""


def generation(db: sqlite3.Connection) -> int:
    """The gallery's generation: the last change log entry (0 before any change was logged)."""
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM face_log").fetchone()[0])


def changes_since(db: sqlite3.Connection, since: int) -> Changes:
    """The faces and people changed after generation `since` (call inside a read transaction to
    pair it with the rows of the same snapshot; `since` at least `log_start`, or entries are missing)."""
    rows = np.array(list(db.execute("SELECT seq, face_id, person_id, added FROM face_log WHERE seq > ? ORDER BY seq",
                                    (int(since),))), np.int64).reshape(-1, 4)
    last = int(rows[-1, 0]) if len(rows) else int(since)
    face_ids, first = np.unique(rows[::-1, 1], return_index=True)  # the last entry of each face wins
    added = rows[::-1, 3][first].astype(bool)
    return Changes(face_ids, np.unique(rows[:, 2]), added, last)


def log_token(db: sqlite3.Connection, seq: int) -> int:
    """The random token of log entry `seq` (0 for generation 0 or an entry that is not there)."""
    row = db.execute("SELECT token FROM face_log WHERE seq = ?", (int(seq),)).fetchone()
    return int(row[0]) if row else 0


def log_start(db: sqlite3.Connection) -> int:
    """The oldest generation the log can still be replayed from: every entry after it is kept (0
    until the log was first pruned)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'log_start'").fetchone()
    return int(row[0]) if row else 0


def prune_log(db: sqlite3.Connection, upto: int) -> int:
    """Inside a write transaction: delete the log entries before generation `upto`, or before the
    oldest generation a reader in `LOG_READERS` reflects if that is older; entry `upto` stays.

    Returns:
        The log's start after pruning (`log_start`).
    """
    readers = [int(v) for (v,) in db.execute(
        "SELECT value FROM meta WHERE value != '' AND key IN (SELECT value FROM json_each(?))", (json.dumps(LOG_READERS),))]
    start, upto = log_start(db), min([int(upto), generation(db), *readers])
    if upto <= start:
        return start
    db.execute("DELETE FROM face_log WHERE seq < ?", (upto,))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('log_start', ?)", (str(upto),))
    return upto

"""What a gallery file holds: the SQLite schema, the model fingerprint it records, valid names.

Schema version 1. `meta` holds key/value facts (model fingerprint, metric, threshold, target FAR,
calibration summary); `people` one row per person with an optional own threshold; `faces` one
row per enrolled image (its code as float32 bytes and a hash of its pixels); `rejections` and
`links` are the corrections of issue 10 ("not this person", must-link / cannot-link).
"""

from __future__ import annotations

from typing import Any


from facespace.checkpoint import weights_hash
from facespace.errors import FacespaceError

SCHEMA_VERSION = 1
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

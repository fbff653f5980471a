"""The identifying half of a gallery: name each probe face, or None for a stranger; "not this person".

`facespace.people.gallery.gallery.Gallery` stores the enrolled codes and keeps its stranger threshold
calibrated; the methods here, mixed into it, read them. A probe is named as its nearest enrolled
person when that distance is within the threshold (or the person's own `max_distance`).

Corrections: `reject(face, name)` ("not this person") stores the face's code: from then on a
probe whose code lies within the gallery's `reject_radius` of a rejected code is never named as
that person. The radius is half the 1st percentile of the distances between two different
enrolled photos of one person (their nearest same-person neighbours; `reject_radius`), so only
that face and near-copies of it (re-encoded, re-saved, slightly shifted) are affected, not the
person's other photos; a gallery whose people have one photo each falls back to
`REJECT_FRACTION` of the stranger threshold.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np

from facespace.people.gallery.store import GalleryError
from facespace.people.quality import face_quality
from facespace.people.distances import cross_distances

__all__ = ["IdentifyMixin", "Identification", "REJECT_FRACTION"]

REJECT_FRACTION = 0.1  # without same-person pairs: "near-identical" = within this fraction of the threshold
# the stranger threshold keeps the false-accept rate at or under its target with this confidence
CALIBRATION_CONFIDENCE = 0.95


class Identification(NamedTuple):
    """One probe's answer.

    Attributes:
        name: the enrolled person, or None for a stranger.
        distance: distance to the nearest enrolled person.
        candidates: `[(name, distance)]` of the nearest people, nearest first (people rejected
            for this face by `Gallery.reject` left out).
        quality: the probe's `facespace.people.quality.FaceQuality` (None when identified from codes).
    """

    name: str | None
    distance: float
    candidates: list[tuple[str, float]]
    quality: Any = None


class IdentifyMixin:
    """`Gallery`'s identify and correction methods. The host provides `db`, `meta`, `path`,
    `model`, `metric`, `threshold`, `codes()`, `_encode()` and `_transaction()`."""

    def identify(self, images: Any, *, k: int = 5, max_distance: float | None = None,
                 sizes: Any = None) -> list[Identification]:
        """Name each probe face, or None for a stranger; with its quality.

        Args:
            images: `(n, H, W, C)` float32 at the model's shape, or image paths.
            k: how many candidate people to report per probe.
            max_distance: override the calibrated threshold.
            sizes: `n` face sides in source pixels where known (for the quality's size check).

        Returns:
            One `Identification` per probe, `quality` filled in.
        """
        self._threshold_for(max_distance)  # refuse an empty gallery before encoding anything
        z, _, _, x, side = self._encode(images, sizes)
        quality = face_quality(x, model=self.model, sizes=side, codes=z)
        return [r._replace(quality=q) for r, q in zip(self.identify_codes(z, k=k, max_distance=max_distance), quality)]

    def _threshold_for(self, max_distance: float | None) -> float:
        if len(self) == 0 or not self.db.execute("SELECT 1 FROM faces LIMIT 1").fetchone():
            raise GalleryError(f"gallery {self.path} has nobody enrolled; enrol people with `facespace people enroll`")
        threshold = max_distance if max_distance is not None else self.threshold
        if threshold is None:
            raise GalleryError(
                f"gallery {self.path} has only {len(self)} person enrolled; the stranger threshold is calibrated "
                "from two or more people: enrol more people or pass max_distance")
        return float(threshold)

    def identify_codes(self, codes: Any, *, k: int = 5, max_distance: float | None = None) -> list[Identification]:
        """`identify` for codes already made with the gallery's model (e.g. `facespace encode`'s export).

        Args:
            codes: `(n, d)` float32 (or one `(d,)` code).
        """
        threshold = self._threshold_for(max_distance)
        z = self._check_codes(codes)
        codes_, person, names = self.codes()
        per_person = dict(self.db.execute("SELECT name, max_distance FROM people WHERE max_distance IS NOT NULL"))
        rej_codes, rej_person = self.rejections()
        stored = dict(self.db.execute("SELECT key, value FROM meta WHERE key = 'reject_radius'")).get("reject_radius")
        radius = max(float(stored) if stored else REJECT_FRACTION * threshold, 1e-6)
        order_by_person = np.argsort(person, kind="stable")
        present, starts = np.unique(person[order_by_person], return_index=True)
        out = []
        for i in range(0, len(z), 1024):
            d = cross_distances(z[i : i + 1024], codes_[order_by_person], metric=self.metric)  # (q, n)
            best = np.full((len(d), len(names)), np.inf)
            best[:, present] = np.minimum.reduceat(d, starts, axis=1)  # nearest face of each person
            if len(rej_codes):  # "not this person": that person is no answer for this face
                near = cross_distances(z[i : i + 1024], rej_codes, metric=self.metric) <= radius  # (q, r)
                rows, cols = np.nonzero(near)
                best[rows, rej_person[cols]] = np.inf
            order = np.argsort(best, axis=1, kind="stable")[:, :k]
            for row, idx in zip(best, order):
                cands = [(names[j], float(row[j])) for j in idx if np.isfinite(row[j])]
                if not cands:
                    out.append(Identification(None, float("inf"), []))
                    continue
                top, dist = cands[0]
                limit = per_person.get(top, threshold) if max_distance is None else max_distance
                out.append(Identification(top if dist <= limit else None, dist, cands))
        return out

    def _check_codes(self, codes: Any) -> np.ndarray:
        z = np.asarray(codes, np.float32)
        z = z[None] if z.ndim == 1 else z
        d = int(self.meta["code_size"])
        if z.ndim != 2 or z.shape[1] != d:
            raise GalleryError(f"codes have shape {z.shape} but this gallery holds codes of size {d}; "
                               f"use codes made with its model ({self.meta.get('model_kind')} {self.meta.get('model_path')})")
        if not np.isfinite(z).all():
            raise GalleryError("codes contain NaN or infinite values")
        return z

    # --- corrections -----------------------------------------------------------------------------
    def reject(self, image_or_code: Any, name: str, *, source: str | None = None) -> int:
        """"Not this person": never name this face (or near-identical ones) as `name` again.

        Args:
            image_or_code: an `(H, W, C)` image (or a batch of one), an image path, or a `(d,)` code.
            name: the enrolled person it is not.
            source: what to record as the face's origin (default: the path, or "array").

        Returns:
            How many rejections `name` has now.
        """
        x = image_or_code
        if isinstance(x, np.ndarray) and x.ndim in (1, 2):  # images are (H, W, C) or (1, H, W, C)
            z, src = self._check_codes(x), "code"
        else:
            z, srcs, _, _, _ = self._encode(x if not isinstance(x, np.ndarray) or x.ndim == 4 else x[None])
            src = srcs[0]
        if len(z) != 1:
            raise GalleryError(f"reject takes one face; got {len(z)}")
        with self._transaction():
            row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"{name!r} is not enrolled in {self.path}; `facespace people list` shows who is")
            self.db.execute("INSERT INTO rejections (person_id, code, source, created) VALUES (?, ?, ?, ?)",
                            (row[0], z[0].astype("<f4").tobytes(), source or src, time.time()))
            return int(self.db.execute("SELECT COUNT(*) FROM rejections WHERE person_id = ?", (row[0],)).fetchone()[0])

    def rejections(self) -> tuple[np.ndarray, np.ndarray]:
        """`(codes (r, d) float32, person index (r,))` of every "not this person" correction, indexed
        like `codes()`'s names."""
        d = int(self.meta["code_size"])
        ids = [pid for pid, in self.db.execute("SELECT id FROM people ORDER BY id")]
        rows = list(self.db.execute("SELECT person_id, code FROM rejections ORDER BY id"))
        index = {pid: i for i, pid in enumerate(ids)}
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), d).copy()
        return codes, np.array([index[r[0]] for r in rows], np.int64)

"""A gallery of enrolled people that names faces and rejects strangers.

The gallery is one SQLite file holding each enrolled face's code (never the model): enrolling
a person encodes their images and adds rows, no retraining. `identify` finds each probe's nearest
enrolled person and accepts the match only when its distance is within a threshold calibrated for
a target false-accept rate on the enrolled people themselves: for every enrolled face, its nearest
other face of the same person is a genuine score, and its nearest face of any other person is an
impostor score (as if that person were a stranger). The threshold keeps the impostor false-accept
rate under the target with 95 % confidence (`facespace.people.thresholds.stranger_threshold`), not merely on
average. It is recalibrated inside the same transaction as every change.

Durability: every change is one transaction (an interrupted enrol leaves the gallery as it was),
the journal is write-ahead (WAL) so other processes can read while one writes, and the file records
the model it was built with and refuses another.

Quality and corrections: `enroll` refuses images that fail `facespace.people.quality.face_quality`
(blurry, flat, not face-like, too small) with `LowQualityError` unless `force=True`; `identify`
reports each probe's quality. `reject(face, name)` ("not this person") keeps that face (and
near-copies of it) from being named as that person again. The SQLite schema is in
`facespace.people.gallery.store`; the matching and calibration math in `...gallery.matching`;
encoding and checking what is enrolled in `...gallery.intake`. `identify` names probes through the
index kept beside the gallery (`...gallery.gallery_index`, `...gallery.shortlist`) with the full
scan's answers; large galleries calibrate on a sample of faces (`...gallery.sampled`).

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> rng = np.random.default_rng(0)
    >>> g = Gallery(":memory:", PixelEncoder(size=4, channels=1))
    >>> g.enroll("ann", rng.random((3, 4, 4, 1), dtype=np.float32))
    3
    >>> g.list()
    [('ann', 3)]
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np


from facespace.data.crops import RECORDED
from facespace.people.cohort_norm import CohortNorm
from facespace.people.gallery.changes import ensure_log, has_log
from facespace.people.gallery.gallery_index import INDEXED_SCORINGS, GalleryIndex
from facespace.people.gallery.intake import check_codes, encode_faces, prepare_people
from facespace.people.gallery.matching import REJECT_FRACTION, Identification, match_codes
from facespace.people.gallery.sampled import recalibrate
from facespace.people.gallery.store import (
    GalleryError, check_name, connect, db_text, model_fingerprint, open_gallery, read_codes, read_cohort,
    remove_gallery_files, transaction,
)
from facespace.people.gallery.shortlist import identify_indexed
from facespace.people.quality import LowQualityError, face_quality
from facespace.protocol import Encoder

__all__ = ["Gallery", "GalleryError", "Identification", "LowQualityError", "enroll", "identify"]


class Gallery:
    """Enrolled people in a SQLite file.

    Args:
        path: the gallery file (created on first enrol); ":memory:" for a throw-away one.
        model: the `Encoder` that makes the codes; may be None to list or remove people.
        metric: "cosine" or "l2" (fixed when the gallery is created).
        target_far: false-accept rate the stranger threshold is calibrated for (fixed at creation;
            change it with `calibrate`).
        scoring: how a person is scored, fixed at creation: "nearest" (the distance to their nearest
            enrolled face), "centroid" (to the mean of their codes) or "snorm" (the centroid
            distance S-normalised against a cohort of outside faces, `facespace.people.cohort_norm`);
            default: the model's recommendation (dlib: snorm), else nearest.
        cohort: for scoring "snorm", `(m, d)` codes of people outside the gallery and its probes
            (default: the cohort the model carries); kept in the gallery file at creation.

    Example:
        >>> g = Gallery("people.db", model)                # doctest: +SKIP
        >>> g.enroll("Ada", ["ada1.jpg", "ada2.jpg"])       # doctest: +SKIP
        >>> g.identify(["probe.jpg"])[0].name              # doctest: +SKIP
        'Ada'
    """

    def __init__(self, path: str | os.PathLike, model: Encoder | None = None, *, metric: str = "cosine",
                 target_far: float = 0.01, create: bool = True, scoring: str | None = None, cohort: Any = None):
        self.path = str(path)
        self.model = model
        # `_new`: this object created the file, which is removed again if its first enrolment fails
        self.db, self.meta, self._new = open_gallery(self.path, model, create=create, metric=metric,
                                                     target_far=target_far, scoring=scoring, cohort=cohort)
        if model is not None:
            self._check_model(model)
        ensure_log(self.db)  # the change log the index beside the gallery catches up from
        self._index: GalleryIndex | None = None

    # --- setup ---------------------------------------------------------------------------------
    def _check_model(self, model: Encoder) -> None:
        want = self.meta.get("model_fingerprint")
        got = model_fingerprint(model)
        if want != got:
            raise GalleryError(
                f"gallery {self.path} was built with another model ({self.meta.get('model_kind')} "
                f"{self.meta.get('model_path') or ''}, fingerprint {want}); this model's is {got}. "
                "Open it with that model, or enrol into a new gallery file"
            )

    def _transaction(self) -> transaction:
        return transaction(self.db)

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
    def scoring(self) -> str:
        """How a person is scored: "nearest" enrolled face, "centroid" of their codes, or "snorm" (fixed at creation)."""
        return self.meta.get("scoring", "nearest")

    def cohort(self) -> CohortNorm | None:
        """The fitted cohort a "snorm" gallery normalises against (kept in the file), else None."""
        if self.scoring != "snorm":
            return None
        if getattr(self, "_cohort", None) is None:
            self._cohort = read_cohort(self.meta["cohort"], self.metric)
        return self._cohort

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
        return read_codes(self.db, int(self.meta["code_size"]))

    # --- identifying ---------------------------------------------------------------------------
    def identify(self, images: Any, *, k: int = 5, max_distance: float | None = None,
                 sizes: Any = None, crop: Any = RECORDED) -> list[Identification]:
        """Name each probe face, or None for a stranger; with its quality.

        Args:
            images: `(n, H, W, C)` float32 at the model's shape, or image paths.
            k: how many candidate people to report per probe.
            max_distance: override the calibrated threshold.
            sizes: `n` face sides in source pixels where known (for the quality's size check).
            crop: how image files are cut (`facespace.data.crops`); default: the model's own.

        Returns:
            One `Identification` per probe, `quality` filled in.
        """
        self._threshold_for(max_distance)  # refuse an empty gallery before encoding anything
        z, _, _, x, side = self._encode(images, sizes, crop)
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
        z = check_codes(codes, self.meta)
        per_person = dict(self.db.execute("SELECT name, max_distance FROM people WHERE max_distance IS NOT NULL"))
        stored = dict(self.db.execute("SELECT key, value FROM meta WHERE key = 'reject_radius'")).get("reject_radius")
        radius = max(float(stored) if stored else REJECT_FRACTION * threshold, 1e-6)
        if self.scoring in INDEXED_SCORINGS and has_log(self.db):  # a shortlist from the index, scored exactly
            found = identify_indexed(self.gallery_index(), z, threshold=threshold, k=k, per_person=per_person,
                                     radius=radius, override=max_distance is not None, cohort=self.cohort())
            if found is not None:  # None: an S-norm gallery last changed by an older facespace
                return found
        codes_, person, names = self.codes()
        rej_codes, rej_person = self.rejections()
        return match_codes(z, codes_, person, names, threshold=threshold, metric=self.metric, k=k, per_person=per_person,
                           rejected=rej_codes, rejected_person=rej_person, radius=radius, override=max_distance is not None,
                           scoring=self.scoring, cohort=self.cohort())

    def gallery_index(self) -> GalleryIndex:
        """The search index kept beside this gallery (`<gallery>.index`), caught up on each identification."""
        if self._index is None:
            self._index = GalleryIndex(self.db, self.path, metric=self.metric, scoring=self.scoring,
                                       code_size=int(self.meta["code_size"]))
        return self._index

    # --- corrections ---------------------------------------------------------------------------
    def reject(self, image_or_code: Any, name: str, *, source: str | None = None, crop: Any = RECORDED) -> int:
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
            z, src = check_codes(x, self.meta), "code"
        else:
            z, srcs, _, _, _ = self._encode(x if not isinstance(x, np.ndarray) or x.ndim == 4 else x[None], crop=crop)
            src = srcs[0]
        if len(z) != 1:
            raise GalleryError(f"reject takes one face; got {len(z)}")
        with self._transaction():
            row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"{name!r} is not enrolled in {self.path}; `facespace people list` shows who is")
            self.db.execute("INSERT INTO rejections (person_id, code, source, created) VALUES (?, ?, CAST(? AS TEXT), ?)",
                            (row[0], z[0].astype("<f4").tobytes(), db_text(source or src), time.time()))
            return int(self.db.execute("SELECT COUNT(*) FROM rejections WHERE person_id = ?", (row[0],)).fetchone()[0])

    def rejections(self) -> tuple[np.ndarray, np.ndarray]:
        """`(codes (r, d) float32, person index (r,))` of every "not this person" correction, indexed
        like `codes()`'s names."""
        codes, person, _ = read_codes(self.db, int(self.meta["code_size"]), "rejections")
        return codes, person

    # --- changing ------------------------------------------------------------------------------
    def _encode(self, images: Any, sizes: Any = None, crop: Any = RECORDED, names: Any = None
                ) -> tuple[np.ndarray, list[str], list[str], np.ndarray, Any]:
        """`(codes, sources, image hashes, images, face sizes)` (`facespace.people.gallery.intake`)."""
        return encode_faces(self.model, images, sizes, crop, names)

    def enroll(self, name: str, images: Any, *, replace: bool = False, force: bool = False,
               sizes: Any = None, crop: Any = RECORDED, sources: Any = None) -> int:
        """Add a person, or more images of an enrolled person.

        Args:
            name: the person's name ("unknown" is reserved for strangers).
            images: `(n, H, W, C)` float32 at the model's shape, or image paths.
            replace: drop the person's earlier images instead of adding to them.
            force: enrol images that fail the quality checks too.
            sizes: `n` face sides in source pixels (e.g. detection boxes), for the size check.
            crop: how image files are cut (`facespace.data.crops`); default: the model's own.
            sources: what to call array images in the gallery and in messages (e.g. uploads' file
                names); default "array[i]". Image files are called by their paths.

        Returns:
            How many images the person has now.

        Raises:
            LowQualityError: some images failed `face_quality` (each named with its reasons);
                nothing was enrolled.
        """
        return self.enroll_many({name: images}, replace=replace, force=force, crop=crop,
                                sizes=None if sizes is None else {check_name(name): sizes},
                                sources=None if sources is None else {check_name(name): sources})[check_name(name)]

    def enroll_many(self, people: dict[str, Any], *, replace: bool = False, force: bool = False,
                    sizes: dict[str, Any] | None = None, crop: Any = RECORDED,
                    sources: dict[str, Any] | None = None) -> dict[str, int]:
        """Enrol several people in one transaction (and one recalibration).

        Args:
            people: `{name: images}`, images as in `enroll`.
            replace: drop each person's earlier images.
            force: enrol images that fail the quality checks too.
            sizes: `{name: face sides in source pixels}` where known.
            crop: how image files are cut; default: the model's own.

        Returns:
            `{name: how many images the person has now}`.
        """
        try:
            return self._enroll_many(people, replace=replace, force=force, sizes=sizes, crop=crop, sources=sources)
        except BaseException:
            self._drop_if_new()
            raise

    def _drop_if_new(self) -> None:
        """A gallery this object created and nobody was enrolled in is removed: a failed first
        enrolment leaves no empty file bound to its model behind."""
        if not self._new or self.db.execute("SELECT 1 FROM people LIMIT 1").fetchone():
            return
        self.db.close()
        remove_gallery_files(self.path)
        self._new = False
        self.db, _ = connect(":memory:")  # closed galleries still answer len() and close()

    def _enroll_many(self, people: dict[str, Any], *, replace: bool, force: bool, sizes: dict[str, Any] | None,
                     crop: Any, sources: dict[str, Any] | None) -> dict[str, int]:
        batches = prepare_people(self.model, people, force=force, sizes=sizes, crop=crop, sources=sources)
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
            "INSERT INTO faces (person_id, code, code_hash, source, added) VALUES (?, ?, ?, CAST(? AS TEXT), ?)",
            [(pid, c.astype("<f4").tobytes(), h, db_text(s), now) for c, h, s in zip(z, hashes, sources)])
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
        """Inside a transaction: recompute the stranger threshold from the enrolled faces (all of them,
        or in a large gallery a sample kept up to date: `facespace.people.gallery.sampled`)."""
        t, facts, radius = recalibrate(self.db, cohort=self.cohort())
        self._set_meta(reject_radius="" if radius is None else radius)
        if dict(self.db.execute("SELECT key, value FROM meta WHERE key = 'threshold_source'")).get("threshold_source") == "manual":
            return
        self._set_meta(threshold="" if t is None else t, calibration="" if facts is None else json.dumps(facts))


def identify(model: Encoder, images: Any, gallery: str | os.PathLike, **options: Any) -> list[Identification]:
    """`Gallery(gallery, model).identify(images, **options)` in one call."""
    with Gallery(gallery, model) as g:
        return g.identify(images, **options)


def enroll(model: Encoder, name: str, images: Any, gallery: str | os.PathLike, *, replace: bool = False,
           force: bool = False) -> int:
    """`Gallery(gallery, model).enroll(name, images, replace=replace, force=force)` in one call."""
    with Gallery(gallery, model) as g:
        return g.enroll(name, images, replace=replace, force=force)

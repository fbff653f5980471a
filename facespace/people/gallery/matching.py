"""How a gallery names a probe: its nearest enrolled person when that distance is within the
stranger threshold (or the person's own `max_distance`), else None; and how that threshold is set.

Pure functions on codes; `facespace.people.gallery.gallery.Gallery` reads its SQLite file and calls
them.

Corrections: a "not this person" code (`Gallery.reject`) keeps every probe whose code lies within
the gallery's reject radius of it from being named as that person. The radius is half the 1st
percentile of the distances between two different enrolled photos of one person (their nearest
same-person neighbours; `facespace.people.thresholds.reject_radius`), so only that face and
near-copies of it (re-encoded, re-saved, slightly shifted) are affected, not the person's other
photos; a gallery whose people have one photo each falls back to `REJECT_FRACTION` of the stranger
threshold.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from facespace.errors import FacespaceError
from facespace.people.distances import centroid_scores, cross_distances, open_set_scores, person_centroids
from facespace.people.thresholds import (CALIBRATION_CONFIDENCE, reject_radius, stranger_threshold,
                                         threshold_from_impostors)

__all__ = ["Identification", "REJECT_FRACTION", "calibrate_strangers", "match_codes", "threshold_from_scores"]

REJECT_FRACTION = 0.1  # without same-person pairs: "near-identical" = within this fraction of the threshold


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


def match_codes(
    probes: np.ndarray,
    codes: np.ndarray,
    person: np.ndarray,
    names: list[str],
    *,
    threshold: float,
    metric: str = "cosine",
    k: int = 5,
    per_person: dict[str, float] | None = None,
    rejected: np.ndarray | None = None,
    rejected_person: np.ndarray | None = None,
    radius: float = 0.0,
    override: bool = False,
    scoring: str = "nearest",
    cohort: Any = None,
    probe_stats: tuple[np.ndarray, np.ndarray] | None = None,
    person_stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Identification]:
    """Name each probe code as its nearest enrolled person, or None for a stranger.

    Args:
        probes: `(q, d)` float32 probe codes.
        codes: `(n, d)` enrolled codes; `person` `(n,)` int: index into `names` of each.
        threshold: the largest distance still accepted.
        metric: "cosine" or "l2".
        k: candidate people reported per probe.
        per_person: name -> that person's own threshold (ignored when `override`).
        rejected, rejected_person: `(r, d)` "not this person" codes and `(r,)` their person index.
        radius: how near a probe must be to a rejected code to count as that face.
        override: `threshold` was given by the caller and applies to everyone.
        scoring: "nearest" (a person's distance is that of their nearest enrolled face),
            "centroid" (the distance to the mean of their codes: steadier with several photos) or
            "snorm" (the centroid distance S-normalised against `cohort`: a z-score, lower = nearer).
        cohort: a fitted `facespace.people.cohort_norm.CohortNorm`, needed by scoring "snorm".
        probe_stats: "snorm": the probes' cohort statistics `(mean (q,), spread (q,))` where
            already computed (`CohortNorm.stats`).
        person_stats: "snorm": each person's, `(mean, spread)` each `(len(names),)` indexed like
            `names`, where already computed (of their centroid; only the people with codes are read).

    Returns:
        One `Identification` per probe (`quality` None).
    """
    per_person = {} if override or per_person is None else per_person
    order_by_person = np.argsort(person, kind="stable")
    present, starts = np.unique(person[order_by_person], return_index=True)
    out = []
    if scoring in ("centroid", "snorm"):
        present, centroids = person_centroids(codes, person, metric=metric)
    if scoring == "snorm":
        if cohort is None:
            raise FacespaceError("scoring 'snorm' needs a cohort of outside faces (a fitted CohortNorm); pass cohort=")
        centroid_stats = cohort.stats(centroids) if person_stats is None else tuple(s[present] for s in person_stats)
    for i in range(0, len(probes), 1024):
        best = np.full((len(probes[i : i + 1024]), len(names)), np.inf)
        if scoring in ("centroid", "snorm"):
            best[:, present] = cross_distances(probes[i : i + 1024], centroids, metric=metric)
            if scoring == "snorm":
                mine = None if probe_stats is None else tuple(s[i : i + 1024] for s in probe_stats)
                best[:, present] = cohort.normalise(best[:, present], probes[i : i + 1024], None, probe_stats=mine,
                                                    target_stats=centroid_stats)
        else:
            d = cross_distances(probes[i : i + 1024], codes[order_by_person], metric=metric)  # (q, n)
            best[:, present] = np.minimum.reduceat(d, starts, axis=1)  # nearest face of each person
        if rejected is not None and len(rejected):  # "not this person": that person is no answer for this face
            near = cross_distances(probes[i : i + 1024], rejected, metric=metric) <= radius  # (q, r)
            rows, cols = np.nonzero(near)
            best[rows, rejected_person[cols]] = np.inf
        order = np.argsort(best, axis=1, kind="stable")[:, :k]
        for row, idx in zip(best, order):
            cands = [(names[j], float(row[j])) for j in idx if np.isfinite(row[j])]
            if not cands:
                out.append(Identification(None, float("inf"), []))
                continue
            top, dist = cands[0]
            out.append(Identification(top if dist <= per_person.get(top, threshold) else None, dist, cands))
    return out


def calibrate_strangers(codes: np.ndarray, person: np.ndarray, *, metric: str, target_far: float,
                        model_impostors: dict[str, Any] | None = None, scoring: str = "nearest",
                        cohort: Any = None) -> tuple[float | None, dict[str, Any] | None, float | None]:
    """The stranger threshold of a gallery, from its enrolled faces, or from its model when too few.

    Every enrolled face's nearest other face of the same person is a genuine score, and its nearest
    face of anyone else an impostor score (as if that person were a stranger); the threshold keeps
    the impostor false-accept rate under `target_far` with 95 % confidence (`stranger_threshold`).
    That guarantee needs many impostor scores (299 at 1 %); with fewer, a gallery whose model
    carries its own impostor distances (`model_impostors`, measured on people it never saw) takes
    the threshold from them for its size (`threshold_from_impostors`), and the facts say so.

    Returns:
        `(threshold, calibration facts, reject radius)`; threshold and facts are None with fewer
        than two people and no model record.
    """
    genuine, impostor = open_set_scores(codes, person, metric=metric)
    radius = reject_radius(genuine)  # corrections act on faces, whatever the scoring
    if scoring in ("centroid", "snorm"):
        genuine, impostor = centroid_scores(codes, person, metric=metric, cohort=cohort if scoring == "snorm" else None)
    t, facts = threshold_from_scores(genuine, impostor, people=len(np.unique(person)), faces=len(codes),
                                     target_far=target_far, model_impostors=model_impostors)
    return t, facts, radius


def threshold_from_scores(genuine: np.ndarray, impostor: np.ndarray, *, people: int, faces: int, target_far: float,
                          model_impostors: dict[str, Any] | None = None) -> tuple[float | None, dict[str, Any] | None]:
    """`calibrate_strangers` from scores already computed (all faces', or a sample's:
    `facespace.people.gallery.sampled`) for a gallery of `people` people and `faces` faces.

    Returns:
        `(threshold, calibration facts)`, both None with fewer than two people and no model record.
    """
    few = people < 2 or stranger_threshold(impostor, target_far)[1] == 0
    if few and model_impostors and faces:
        t = threshold_from_impostors(model_impostors, faces, target_far)
        facts = {"target_far": target_far, "source": "model", "enrolled_faces": int(faces),
                 "model_impostor_pairs": model_impostors.get("pairs"), "measured_on": model_impostors.get("source"),
                 "genuine_accept_rate": float((genuine <= t).mean()) if len(genuine) else float("nan")}
        return t, facts
    if people < 2:
        return None, None
    t, k = stranger_threshold(impostor, target_far)
    tar = float((genuine <= t).mean()) if len(genuine) else float("nan")
    facts = {"target_far": target_far, "confidence": CALIBRATION_CONFIDENCE, "impostor_scores": len(impostor),
             "impostors_accepted": k, "genuine_scores": len(genuine), "genuine_accept_rate": tar, "source": "gallery"}
    return t, facts

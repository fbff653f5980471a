"""Distances between codes (by `facespace.protocol.METRICS`): pair and all-against-all distances, and the
genuine/impostor scores of a set of labelled codes.

Example:
    >>> a = np.array([[1.0, 0.0]]); b = np.array([[0.0, 2.0]])
    >>> float(pair_distances(a, b)[0]), float(pair_distances(a, b, metric="l2")[0]) ** 2
    (1.0, 5.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.protocol import METRICS


def pair_distances(codes_a: np.ndarray, codes_b: np.ndarray, *, metric: str = "cosine") -> np.ndarray:
    """Distance between row i of `codes_a` and row i of `codes_b`.

    Args:
        codes_a, codes_b: `(n, d)` float32.
        metric: "cosine" (1 - cosine similarity, in [0, 2]) or "l2" (Euclidean).

    Returns:
        `(n,)` float64 distances.
    """
    a = np.asarray(codes_a, np.float64)
    b = np.asarray(codes_b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise FacespaceError(f"codes must be two (n, d) arrays of one shape; got {a.shape} and {b.shape}")
    if metric == "cosine":
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        return 1.0 - (a * b).sum(1) / np.maximum(na * nb, 1e-12)
    if metric == "l2":
        return np.linalg.norm(a - b, axis=1)
    raise FacespaceError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")


def cross_distances(queries: np.ndarray, codes: np.ndarray, *, metric: str = "cosine") -> np.ndarray:
    """All distances between `(q, d)` queries and `(n, d)` codes -> `(q, n)` float64."""
    q = np.asarray(queries, np.float64)
    c = np.asarray(codes, np.float64)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return 1.0 - q @ c.T
    if metric == "l2":
        d2 = (q * q).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2.0 * q @ c.T
        return np.sqrt(np.maximum(d2, 0.0))
    raise FacespaceError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")


# how a gallery scores a person: their nearest enrolled face, their centroid, or their centroid with
# the distance S-normalised against a cohort of outside faces (`facespace.people.cohort_norm`)
SCORINGS = ("nearest", "centroid", "snorm")


def person_centroids(codes: np.ndarray, person: np.ndarray, *, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """One code per person: the mean of their codes (of unit-length codes, renormalised, for cosine).

    Returns:
        `(people (p,) int sorted, centroids (p, d) float32)`.
    """
    z = np.asarray(codes, np.float64)
    if metric == "cosine":
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    people, inverse = np.unique(person, return_inverse=True)
    sums = np.zeros((len(people), z.shape[1]))
    np.add.at(sums, inverse, z)
    c = sums / np.bincount(inverse)[:, None]
    if metric == "cosine":
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return people, c.astype(np.float32)


def centroid_scores(codes: np.ndarray, person: np.ndarray, *, metric: str = "cosine",
                    cohort: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """`open_set_scores` for a gallery that scores people by their centroid: for each enrolled face,
    the distance to its own person's centroid made without it (people with two or more faces) and
    to the nearest other person's centroid.

    Args:
        codes: `(n, d)` enrolled codes; `person` `(n,)` int person of each.
        cohort: a fitted `facespace.people.cohort_norm.CohortNorm`: the distances are S-normalised
            against it (scoring "snorm"); None for plain distances.

    Returns:
        `(genuine, impostor)` float64 arrays.
    """
    z = np.asarray(codes, np.float64)
    if metric == "cosine":
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    people, cents = person_centroids(z, person, metric="l2")  # plain means of the (unit) codes
    index = np.searchsorted(people, person)
    counts = np.bincount(index, minlength=len(people))
    finished = _finish(cents, metric)
    d = cross_distances(z.astype(np.float32), finished, metric=metric)  # (n, p)
    several = counts[index] >= 2
    own = _finish((cents[index][several] * counts[index][several, None] - z[several]) / (counts[index][several, None] - 1), metric)
    genuine = pair_distances(z[several].astype(np.float32), own, metric=metric)
    if cohort is not None:
        face_stats = cohort.stats(z.astype(np.float32))
        d = cohort.normalise(d, None, None, probe_stats=face_stats, target_stats=cohort.stats(finished))
        genuine = cohort.normalise_pairs(genuine, tuple(s[several] for s in face_stats), cohort.stats(own))
    rows = np.arange(len(z))
    d[rows, index] = np.inf
    impostor = d.min(1) if len(people) > 1 else np.zeros(0)
    return genuine, impostor[np.isfinite(impostor)]


def _finish(means: np.ndarray, metric: str) -> np.ndarray:
    m = np.asarray(means, np.float64)
    if metric == "cosine":
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return m.astype(np.float32)


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

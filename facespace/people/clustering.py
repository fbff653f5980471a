"""Group face codes by person: DBSCAN, HDBSCAN or agglomerative clustering of `(n, d)` codes.

Every method returns one integer label per code, `-1` for noise (a face that joins no group).
With the cosine metric the codes are L2-normalised first, so Euclidean distances rank pairs exactly
as cosine distances do; `eps` and `distance_threshold` are always given as cosine distances.
When DBSCAN's `eps` is not given it is chosen on the k-distance curve (`estimate_eps`): by
default the stable candidate radius (a quantile of that curve) at which DBSCAN finds the most
clusters ("most-clusters"); or the curve's knee ("knee", Ester et al.'s heuristic). Face codes of many
people have no density gap for a knee to find: on LFW the knee's radius chains every face into
one cluster (benchmarks/results/clustering.md), while the most-clusters radius sits where groups
of one person are dense and different people have not yet merged.

On small sets of round Gaussian blobs (tens of points each) the smallest stable radii can split
a blob in two; `eps_rule="knee"` suits such data with a clear density gap.

Example:
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(10, 16))  # ten people, eight codes each
    >>> codes = np.concatenate([c / np.linalg.norm(c) + rng.normal(0, 0.1, (8, 16)) for c in centres])
    >>> labels = cluster(codes.astype(np.float32), method="dbscan")
    >>> len(set(labels[labels >= 0].tolist()))
    10
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.protocol import METRICS

METHODS = ("dbscan", "hdbscan", "agglomerative")
EPS_RULES = ("most-clusters", "knee")
# where the most-clusters rule tries DBSCAN: these quantiles of the k-distance curve
EPS_QUANTILES = tuple(q / 100 for q in range(2, 100, 4))


def _prepare(codes: Any, metric: str) -> np.ndarray:
    """`(n, d)` float32, unit rows for the cosine metric."""
    z = np.asarray(codes, np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise FacespaceError(f"codes must be a non-empty (n, d) array; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise FacespaceError("codes contain NaN or infinite values; drop those faces first")
    if metric == "cosine":
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        if (norms < 1e-12).any():
            raise FacespaceError("a code is all zeros and has no direction for the cosine metric; use metric='l2'")
        return (z / norms).astype(np.float32)
    if metric == "l2":
        return z.astype(np.float32)
    raise FacespaceError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")


def _algorithm(z: np.ndarray) -> str:
    """Trees stop paying off in high dimensions (pixels: 3,072); brute force is faster there."""
    return "brute" if z.shape[1] > 16 else "auto"


def _to_euclid(distance: float, metric: str) -> float:
    """A cosine distance c between unit vectors is a Euclidean distance sqrt(2c)."""
    return float(np.sqrt(2.0 * max(distance, 0.0))) if metric == "cosine" else float(distance)


def _from_euclid(distance: float, metric: str) -> float:
    return float(distance**2 / 2.0) if metric == "cosine" else float(distance)


def knee(values: Any) -> int:
    """Index of the knee of an increasing curve: the point farthest below the chord from the first
    to the last point (the "Kneedle" rule).

    Args:
        values: `(n,)` increasing values (e.g. sorted k-distances).
    """
    y = np.asarray(values, np.float64)
    n = len(y)
    if n < 3 or y[-1] == y[0]:
        return n // 2
    x = np.linspace(0.0, 1.0, n)
    yn = (y - y[0]) / (y[-1] - y[0])
    return int(np.argmax(x - yn))  # the chord is y = x; a convex curve lies below it


def k_distances(codes: Any, k: int = 5, *, metric: str = "cosine") -> np.ndarray:
    """Sorted distance of each code to its k-th nearest other code (`(n,)`, in `metric` units)."""
    z = _prepare(codes, metric)
    if len(z) <= k:
        raise FacespaceError(f"{len(z)} codes are too few for k={k}; pass more faces or a smaller min_samples")
    sq = (z * z).sum(1)
    kd = np.empty(len(z), np.float64)
    for i in range(0, len(z), 1024):  # (chunk, n) squared distances by one float32 product
        d2 = sq[i : i + 1024, None] + sq[None, :] - 2.0 * (z[i : i + 1024] @ z.T)
        kd[i : i + 1024] = np.partition(d2, k, axis=1)[:, k]  # column 0 is the point itself
    kd = np.sqrt(np.maximum(np.sort(kd), 0.0))
    return np.array([_from_euclid(v, metric) for v in kd])


def estimate_eps(codes: Any, k: int = 5, *, metric: str = "cosine", rule: str = "knee") -> float:
    """DBSCAN's eps from the k-distance curve.

    Args:
        codes: `(n, d)` codes.
        k: the neighbour counted (DBSCAN's `min_samples`).
        metric: "cosine" or "l2"; eps is returned in its units.
        rule: "knee": the curve's knee (Ester et al. 1996's heuristic); "most-clusters": among
            the quantiles of the curve (`EPS_QUANTILES`), the radius at which DBSCAN with
            `min_samples=k` finds the most clusters, counting only stable radii (the next
            candidate does not merge clusters: a one-off split of a group is not a cluster more),
            the largest such radius on a tie.
    """
    if rule not in EPS_RULES:
        raise FacespaceError(f"unknown eps rule {rule!r}; expected one of: {', '.join(EPS_RULES)}")
    kd = k_distances(codes, k, metric=metric)
    if rule == "knee":
        eps = float(kd[knee(kd)])
    else:
        from sklearn.cluster import DBSCAN

        z = _prepare(codes, metric)
        radii = [float(e) for e in np.unique(np.quantile(kd, EPS_QUANTILES)) if e > 0]
        counts = [int(DBSCAN(eps=_to_euclid(e, metric), min_samples=k, algorithm=_algorithm(z)).fit_predict(z).max()) + 1
                  for e in radii]
        # stable radii: growing to the next candidate merges no clusters (the last one has no next)
        stable = [i for i in range(len(radii) - 1) if counts[i + 1] >= counts[i]] or list(range(len(radii)))
        eps = radii[max(stable, key=lambda i: (counts[i], radii[i]))] if radii else 0.0
    return eps if eps > 0 else float(kd[kd > 0].min()) if (kd > 0).any() else 1e-6


def cluster(
    codes: Any,
    method: str = "dbscan",
    *,
    metric: str = "cosine",
    eps: float | None = None,
    min_samples: int = 5,
    min_cluster_size: int = 5,
    n_clusters: int | None = None,
    distance_threshold: float | None = None,
    linkage: str = "average",
    eps_rule: str = "most-clusters",
) -> np.ndarray:
    """Cluster face codes.

    Args:
        codes: `(n, d)` float32.
        method: "dbscan", "hdbscan" or "agglomerative".
        metric: "cosine" (default) or "l2".
        eps: DBSCAN's neighbourhood radius; default: `estimate_eps(codes, min_samples, rule=eps_rule)`.
        min_samples: DBSCAN/HDBSCAN core-point neighbourhood size (counting the point).
        min_cluster_size: HDBSCAN's smallest cluster; for agglomerative, groups smaller than this
            become noise (-1).
        n_clusters: agglomerative: the number of groups (instead of a distance threshold).
        distance_threshold: agglomerative: merge groups closer than this (in `linkage` terms);
            default: twice the estimated eps.
        linkage: agglomerative linkage, "average", "complete", "single" or "ward" (ward: l2 only).
        eps_rule: how DBSCAN's eps is chosen when not given: "most-clusters" or "knee"
            (`estimate_eps`); the agglomerative default threshold always uses the knee.

    Returns:
        `(n,)` int64 labels, `-1` for noise, clusters numbered 0.. by decreasing size.
    """
    if method not in METHODS:
        raise FacespaceError(f"unknown clustering method {method!r}; expected one of: {', '.join(METHODS)}")
    if eps_rule not in EPS_RULES:
        raise FacespaceError(f"unknown eps rule {eps_rule!r}; expected one of: {', '.join(EPS_RULES)}")
    z = _prepare(codes, metric)
    n = len(z)
    if min_samples < 1 or min_cluster_size < 1:
        raise FacespaceError("min_samples and min_cluster_size must be at least 1")
    if method == "dbscan":
        from sklearn.cluster import DBSCAN

        if eps is None:
            eps = estimate_eps(z, min(min_samples, n - 1), metric=metric, rule=eps_rule) if n > 2 else 1e-6
        if eps <= 0:
            raise FacespaceError(f"eps must be positive; got {eps}")
        labels = DBSCAN(eps=_to_euclid(eps, metric), min_samples=min_samples, algorithm=_algorithm(z)).fit_predict(z)
    elif method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        if n < 2:
            return np.full(n, -1, np.int64)
        labels = HDBSCAN(min_cluster_size=max(2, min(min_cluster_size, n)), min_samples=min(min_samples, n),
                         algorithm=_algorithm(z), copy=True).fit_predict(z)
    else:
        from sklearn.cluster import AgglomerativeClustering

        if n < 2:
            return np.full(n, -1 if min_cluster_size > 1 else 0, np.int64)
        if linkage == "ward" and metric != "l2":
            raise FacespaceError("ward linkage works on Euclidean distances; pass metric='l2' or another linkage")
        if n_clusters is None:
            if distance_threshold is None:  # mean distances within a group run about twice the k-NN radius
                distance_threshold = 2 * estimate_eps(z, min(min_samples, n - 1), metric=metric) if n > 2 else 1.0
            model = AgglomerativeClustering(n_clusters=None, linkage=linkage,
                                            distance_threshold=_to_euclid(distance_threshold, metric))
        else:
            if not 1 <= n_clusters <= n:
                raise FacespaceError(f"n_clusters must be between 1 and the number of codes ({n}); got {n_clusters}")
            model = AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage)
        labels = model.fit_predict(z)
        sizes = np.bincount(labels)
        labels = np.where(sizes[labels] >= min_cluster_size, labels, -1)
    return _renumber(labels)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Clusters 0.. by decreasing size (ties by first appearance); noise stays -1."""
    labels = np.asarray(labels, np.int64)
    out = np.full(len(labels), -1, np.int64)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c >= 0]
    sizes = {c: int((labels == c).sum()) for c in ids}
    for new, c in enumerate(sorted(ids, key=lambda c: -sizes[c])):
        out[labels == c] = new
    return out


def pairwise_f_measure(labels_true: Any, labels_pred: Any) -> float:
    """F1 over pairs: a pair is predicted together when both share a cluster (noise is alone).

    Args:
        labels_true: `(n,)` true identities (any hashable labels).
        labels_pred: `(n,)` int clusters, -1 = noise (each noise point its own singleton).
    """
    t = np.unique(np.asarray(labels_true), return_inverse=True)[1]
    p = np.asarray(labels_pred, np.int64).copy()
    noise = p < 0
    p[noise] = p.max(initial=0) + 1 + np.arange(noise.sum())
    p = np.unique(p, return_inverse=True)[1]
    pairs = lambda counts: float((counts * (counts - 1) / 2).sum())  # noqa: E731
    joint = np.unique(t * (p.max() + 1) + p, return_counts=True)[1]
    tp = pairs(joint)
    pred_pairs = pairs(np.bincount(p))
    true_pairs = pairs(np.bincount(t))
    if tp == 0:
        return 0.0
    precision, recall = tp / pred_pairs, tp / true_pairs
    return float(2 * precision * recall / (precision + recall))


def cluster_scores(labels_true: Any, labels_pred: Any) -> dict[str, float]:
    """Adjusted Rand index, NMI, pairwise F-measure and noise fraction against true identities.

    Noise points count as singletons for ARI and NMI.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    p = np.asarray(labels_pred, np.int64).copy()
    noise = p < 0
    singles = p.copy()
    singles[noise] = p.max(initial=0) + 1 + np.arange(noise.sum())
    return {
        "ari": float(adjusted_rand_score(labels_true, singles)),
        "nmi": float(normalized_mutual_info_score(labels_true, singles)),
        "pairwise_f": pairwise_f_measure(labels_true, p),
        "noise_fraction": float(noise.mean()),
        "clusters": int(len(set(p[~noise].tolist()))),
    }

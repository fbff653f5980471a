"""Score normalisation against a cohort (adaptive S-norm): a distance between a probe and an
enrolled person, measured in how unusual it is for both of them.

Some regions of a code space are crowded: a model trained mostly on one population places the
faces of another closer together, so a stranger from the crowded region lies nearer to an enrolled
person there than a typical stranger does, and a single stranger threshold either accepts them or
rejects the enrolled people of that region. S-norm measures each side against a cohort of faces of
people who are neither enrolled nor probes: for a probe `p` and an enrolled person `t` at distance
`d`,

    d' = ((d - mu_p) / sd_p + (d - mu_t) / sd_t) / 2

where `mu_x, sd_x` are the mean and spread of `x`'s distances to its nearest `top_fraction` of the
cohort. `d'` is a z-score (lower = nearer; a typical non-match is near 0, a match several spreads
below it). Adaptive ("top") statistics follow the crowding near each face; the fraction was chosen
on LFW View 1's people (`benchmarks/identity_dlib.py`, 0.6 for dlib's codes).

Example:
    >>> rng = np.random.default_rng(0)
    >>> norm = CohortNorm(top_fraction=0.5).fit(rng.normal(size=(200, 8)))
    >>> d = norm.normalise(np.array([[0.1]]), rng.normal(size=(1, 8)), rng.normal(size=(1, 8)))
    >>> d.shape
    (1, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.people.distances import cross_distances

__all__ = ["CohortNorm"]

MIN_COHORT = 20  # fewer cohort faces give no spread worth dividing by


class CohortNorm:
    """Adaptive S-norm of distances against a fixed cohort of codes (scikit-learn conventions).

    Args:
        top_fraction: share of the cohort, nearest first, whose distances give each face's mean
            and spread.
        metric: "cosine" or "l2", the metric of the distances being normalised.

    Attributes:
        cohort_: `(m, d)` float32 cohort codes, after `fit`.
    """

    def __init__(self, *, top_fraction: float = 0.6, metric: str = "cosine") -> None:
        self.top_fraction = top_fraction
        self.metric = metric

    def fit(self, cohort: Any) -> "CohortNorm":
        """Keep `cohort`, `(m, d)` codes of people outside the gallery and the probes. Returns self."""
        z = np.asarray(cohort, np.float32)
        if z.ndim != 2 or len(z) < MIN_COHORT:
            raise FacespaceError(f"a cohort must be an (m, d) array of at least {MIN_COHORT} codes; got shape {z.shape}")
        if not np.isfinite(z).all():
            raise FacespaceError("the cohort holds NaN or infinite codes; drop them before fitting")
        if not 0.0 < self.top_fraction <= 1.0:
            raise FacespaceError(f"top_fraction must be in (0, 1]; got {self.top_fraction}")
        self.cohort_ = z
        return self

    @property
    def top(self) -> int:
        """How many nearest cohort faces make each face's statistics."""
        self._check_fitted()
        return max(2, int(round(self.top_fraction * len(self.cohort_))))

    def _check_fitted(self) -> None:
        if not hasattr(self, "cohort_"):
            raise FacespaceError("this CohortNorm is not fitted yet; call fit(cohort) first")

    def stats(self, codes: Any, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, spread)`, each `(n,)` float64, of each code's distances to its nearest cohort faces."""
        self._check_fitted()
        z = np.asarray(codes, np.float32)
        if z.ndim != 2 or z.shape[1] != self.cohort_.shape[1]:
            raise FacespaceError(f"codes of shape {z.shape} do not match the cohort's dimension {self.cohort_.shape[1]}")
        mean, spread = np.empty(len(z)), np.empty(len(z))
        for i in range(0, len(z), chunk):
            d = cross_distances(z[i : i + chunk], self.cohort_, metric=self.metric)  # (c, m)
            d = np.partition(d, self.top - 1, axis=1)[:, : self.top]
            mean[i : i + chunk], spread[i : i + chunk] = d.mean(1), np.maximum(d.std(1), 1e-9)
        return mean, spread

    def normalise(self, distances: np.ndarray, probes: Any, targets: Any, *,
                  probe_stats: tuple[np.ndarray, np.ndarray] | None = None,
                  target_stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """S-normalise `(q, t)` distances between `(q, d)` probes and `(t, d)` targets -> `(q, t)` float64.

        Statistics already computed (`stats`) may be passed instead of recomputing them.
        """
        mp, sp = probe_stats if probe_stats is not None else self.stats(probes)
        mt, st = target_stats if target_stats is not None else self.stats(targets)
        d = np.asarray(distances, np.float64)
        return 0.5 * ((d - mp[:, None]) / sp[:, None] + (d - mt[None, :]) / st[None, :])

    def normalise_pairs(self, distances: np.ndarray, probe_stats: tuple[np.ndarray, np.ndarray],
                        target_stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """S-normalise `(n,)` distances of n (probe, target) pairs given each side's `(n,)` statistics."""
        (mp, sp), (mt, st) = probe_stats, target_stats
        d = np.asarray(distances, np.float64)
        return 0.5 * ((d - mp) / sp + (d - mt) / st)

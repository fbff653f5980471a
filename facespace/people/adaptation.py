"""A linear adaptation of fixed identity codes, learned from labelled people (scikit-learn style).

A pretrained encoder (dlib's) was trained on other people and other photos. Its codes can be fitted
to a population without touching the network: centre them, and scale away the directions in which
one person's photos vary (within-class covariance normalisation, WCCN) or keep the directions that
separate people best (LDA). Codes are length-normalised before and after, and compared by cosine.
Under the LFW protocol the adaptation of each fold is fitted on the other nine folds' people only.

Example:
    >>> rng = np.random.default_rng(0)
    >>> people = rng.normal(size=(20, 8)); labels = np.repeat(np.arange(20), 5)
    >>> codes = people[labels] + 0.3 * rng.normal(size=(100, 8))
    >>> CodeAdapter(method="wccn").fit(codes, labels).transform(codes).shape
    (100, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError, NotFittedError

METHODS = ("center", "whiten", "wccn", "lda")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class CodeAdapter:
    """Fit a linear map of codes on labelled people; `transform` gives unit-length adapted codes.

    Args:
        method: "center" (subtract the mean), "whiten" (total covariance to identity), "wccn"
            (within-person covariance to identity) or "lda" (the `n_components` directions that
            separate people best, scaled by within-person spread).
        n_components: output dimensions for "whiten" and "lda" (None: all; LDA at most people - 1).
        shrinkage: share of the covariance's mean eigenvalue added to its diagonal before it is
            inverted (0: none); keeps rare directions from being blown up.

    Attributes:
        mean_: `(d,)` float64, the mean of the unit-length training codes.
        components_: `(d, k)` float64, the map applied after centring.
        n_people_: the number of people (with two or more codes) the map was fitted on.
    """

    def __init__(self, *, method: str = "wccn", n_components: int | None = None, shrinkage: float = 0.1):
        self.method = method
        self.n_components = n_components
        self.shrinkage = shrinkage

    def fit(self, codes: Any, labels: Any) -> "CodeAdapter":
        """Learn the map from `codes` `(n, d)` and their person `labels` `(n,)`. Returns self."""
        if self.method not in METHODS:
            raise FacespaceError(f"unknown adaptation {self.method!r}; expected one of: {', '.join(METHODS)}")
        if not self.shrinkage >= 0:
            raise FacespaceError(f"shrinkage={self.shrinkage} must be >= 0")
        z = np.asarray(codes, np.float64)
        y = np.asarray(labels)
        if z.ndim != 2 or len(z) != len(y) or not np.isfinite(z).all():
            raise FacespaceError(f"codes must be finite (n, d) with one label each; got {z.shape} and {y.shape}")
        z = _unit(z)
        names, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        several = counts[inverse] >= 2
        self.n_people_ = int((counts >= 2).sum())
        if self.method != "center" and self.n_people_ < 2:
            raise FacespaceError("fitting an adaptation needs at least two people with two or more codes each")
        self.mean_ = z.mean(0)
        zc = z - self.mean_
        d = z.shape[1]
        if self.method == "center":
            self.components_ = np.eye(d)
            return self
        if self.method == "whiten":
            self.components_ = self._inverse_sqrt(np.cov(zc, rowvar=False), self.n_components)
            return self
        # within-person scatter, from people with two or more codes
        zs, ys = zc[several], inverse[several]
        centres = np.zeros((len(names), d))
        np.add.at(centres, ys, zs)
        centres /= np.maximum(np.bincount(ys, minlength=len(names)), 1)[:, None]
        within = np.cov(zs - centres[ys], rowvar=False)
        w_half = self._inverse_sqrt(within, None)  # (d, d): within-person spread -> identity
        if self.method == "wccn":
            self.components_ = w_half
            return self
        between = np.cov(centres[np.unique(ys)] @ w_half, rowvar=False)
        values, vectors = np.linalg.eigh(between)
        order = np.argsort(values)[::-1]
        k = min(self.n_components or d, d, self.n_people_ - 1)
        self.components_ = w_half @ vectors[:, order[:k]]
        return self

    def _inverse_sqrt(self, cov: np.ndarray, k: int | None) -> np.ndarray:
        values, vectors = np.linalg.eigh(cov)
        values = np.maximum(values, 0.0) + self.shrinkage * max(float(values.mean()), 1e-12)
        order = np.argsort(values)[::-1][: k or len(values)]
        return vectors[:, order] / np.sqrt(values[order])

    def transform(self, codes: Any) -> np.ndarray:
        """`(n, d)` codes -> `(n, k)` float32 unit-length adapted codes (compare them by cosine)."""
        if not hasattr(self, "components_"):
            raise NotFittedError("this CodeAdapter is not fitted yet; call fit(codes, labels) first")
        z = np.asarray(codes, np.float64)
        if z.ndim != 2 or z.shape[1] != len(self.mean_):
            raise FacespaceError(f"codes must be (n, {len(self.mean_)}); got {z.shape}")
        return _unit((_unit(z) - self.mean_) @ self.components_).astype(np.float32)

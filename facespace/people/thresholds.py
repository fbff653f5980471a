"""Thresholds and error rates: the one home of the ROC and threshold math.

A pair (or probe) is accepted as the same person when its distance is at most a threshold. This
module chooses thresholds (best accuracy, a target false-accept rate, a false-accept rate held
with a stated confidence) and measures them (accuracy, FAR/FRR curves, ROC, AUC, EER, TAR@FAR).

Example:
    >>> d = np.array([0.1, 0.2, 0.6, 0.7]); same = np.array([True, True, False, False])
    >>> float(calibrate_threshold(d, same))
    0.4
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError

# the false-accept rates at which TAR is reported
FARS = (0.01, 0.001)
# a stranger threshold keeps the false-accept rate at or under its target with this confidence
CALIBRATION_CONFIDENCE = 0.95


def calibrate_threshold(distances: Any, same: Any, *, target_far: float | None = None) -> float:
    """Choose the distance threshold at or under which two faces count as the same person.

    Args:
        distances: `(n,)` distances of labelled pairs.
        same: `(n,)` bool, True for pairs of one person.
        target_far: None for the threshold of highest accuracy on these pairs; else the largest
            threshold whose false-accept rate (different-person pairs accepted) is at most this.

    Returns:
        The threshold (a pair is "same" when `distance <= threshold`). The accuracy-optimal
        threshold lies midway between two neighbouring distances.
    """
    d = np.asarray(distances, np.float64).ravel()
    s = np.asarray(same).astype(bool).ravel()
    if d.shape != s.shape:
        raise FacespaceError(f"distances and same differ in length ({len(d)} vs {len(s)})")
    if not np.isfinite(d).all():
        raise FacespaceError("distances contain NaN or infinite values")
    if target_far is not None:
        if not 0.0 <= target_far < 1.0:
            raise FacespaceError(f"target_far must be in [0, 1); got {target_far}")
        impostor = np.sort(d[~s])
        if len(impostor) == 0:
            raise FacespaceError("no different-person pairs to calibrate a false-accept rate; add some")
        k = int(np.floor(target_far * len(impostor) + 1e-9))  # false accepts allowed
        if k >= len(impostor):
            return float(impostor[-1])
        return float(np.nextafter(impostor[k], -np.inf))
    if s.all() or not s.any():
        raise FacespaceError("calibration needs both same-person and different-person pairs")
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    # accepting the first i sorted pairs: correct = genuine among them + impostors after them
    correct = np.concatenate([[0], np.cumsum(ss)]) + np.concatenate([[(~ss).sum()], (~ss).sum() - np.cumsum(~ss)])
    cut = np.concatenate([[True], ds[1:] != ds[:-1], [True]])  # only cut between distinct values
    correct = np.where(cut, correct, -1)
    best = np.flatnonzero(correct == correct.max())
    i = int(best[len(best) // 2])  # middle of the best plateau
    if i == 0:
        return float(ds[0] - max(1e-6, abs(ds[0]) * 1e-6))
    if i == len(ds):
        return float(ds[-1])
    return float((ds[i - 1] + ds[i]) / 2.0)


def pair_accuracy(distances: Any, same: Any, threshold: float) -> float:
    """Fraction of pairs classified right by `distance <= threshold`."""
    d = np.asarray(distances, np.float64)
    return float(((d <= threshold) == np.asarray(same).astype(bool)).mean())


def roc_metrics(distances: Any, same: Any) -> tuple[np.ndarray, np.ndarray, float, float, dict[float, float]]:
    """ROC of `distance <= t` as the same-person test.

    Returns:
        `(fpr, tpr, auc, eer, {far: tar})`; the EER is interpolated where FAR = FRR.
    """
    d = np.asarray(distances, np.float64)
    s = np.asarray(same).astype(bool)
    if s.all() or not s.any():
        raise FacespaceError("an ROC needs both same-person and different-person pairs")
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    last = np.r_[np.flatnonzero(ds[1:] != ds[:-1]), len(ds) - 1]  # one point per distinct threshold
    tpr = np.r_[0.0, np.cumsum(ss)[last] / ss.sum()]
    fpr = np.r_[0.0, np.cumsum(~ss)[last] / (~ss).sum()]
    auc = float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))
    frr = 1.0 - tpr
    i = int(np.flatnonzero(fpr >= frr)[0])  # first point where false accepts catch up with false rejects
    if i == 0:
        eer = float(fpr[0])
    else:  # interpolate between points i-1 and i on the line fpr - frr = 0
        g0, g1 = fpr[i - 1] - frr[i - 1], fpr[i] - frr[i]
        w = g0 / (g0 - g1)
        eer = float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))
    tar = {far: float(tpr[fpr <= far + 1e-12].max()) for far in FARS}
    return fpr, tpr, auc, eer, tar


def error_curves(scores: Any, genuine: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept and false-reject rates at every distinct score used as the threshold.

    Returns:
        `(thresholds (m,), far (m,), frr (m,))`, thresholds ascending; far rises and frr falls.
    """
    s = np.asarray(scores, np.float64)
    g = np.asarray(genuine, bool)
    t = np.unique(s)
    imp, gen = np.sort(s[~g]), np.sort(s[g])
    far = np.searchsorted(imp, t, side="right") / max(len(imp), 1)
    frr = 1.0 - np.searchsorted(gen, t, side="right") / max(len(gen), 1)
    return t, far, frr


def stranger_threshold(impostor: Any, target_far: float, *, confidence: float = CALIBRATION_CONFIDENCE
                       ) -> tuple[float, int]:
    """The largest threshold whose false-accept rate is at most `target_far` with `confidence`.

    Taking the `target_far` quantile of the impostor scores themselves misses the target half of
    the time (the quantile of a sample scatters around the true one); on LFW it accepted 1.95 % of
    strangers for a 1 % target. Here the threshold sits just under the (k+1)-th smallest score, with
    k the largest count for which `P(Binomial(n, target_far) <= k) <= 1 - confidence`: the chance
    that the true rate exceeds the target is then at most `1 - confidence`. Too few scores for
    that guarantee (n < 299 at 1 %, 95 %) give k = 0: just under the smallest score.

    Args:
        impostor: `(n,)` distances of different-person pairs (n >= 1).
        target_far: the false-accept rate to stay under, in [0, 1).
        confidence: in (0, 1).

    Returns:
        `(threshold, k)`: accept `distance <= threshold`; k calibration impostors fall under it.
    """
    from scipy.stats import binom

    d = np.sort(np.asarray(impostor, np.float64).ravel())
    n = len(d)
    ok = np.flatnonzero(binom.cdf(np.arange(n + 1), n, target_far) <= 1.0 - confidence)
    k = int(ok[-1]) if len(ok) else 0
    if k >= n:
        return float(d[-1]), n
    return float(np.nextafter(d[k], -np.inf)), k


def threshold_from_impostors(record: dict[str, Any], n_faces: int, target_far: float) -> float:
    """A stranger threshold from a model's recorded impostor distances, for a gallery of `n_faces`.

    A stranger is wrongly named when any of the `n_faces` enrolled faces lies within the threshold;
    with independent pairs that happens with probability `1 - (1 - p)^n_faces` for a per-pair rate
    p, so p is set to keep that at `target_far`, and the threshold is the recorded distance quantile
    at p (interpolated on a log scale of p).

    Args:
        record: `{"p": [...], "distance": [...]}`: increasing per-pair false-accept rates and the
            impostor distance at each (`impostor_record`).
        n_faces: enrolled faces the probe is compared with (>= 1).
        target_far: the share of strangers that may be named, in (0, 1).
    """
    p = 1.0 - (1.0 - target_far) ** (1.0 / max(int(n_faces), 1))
    ps, ds = np.asarray(record["p"], np.float64), np.asarray(record["distance"], np.float64)
    return float(np.interp(np.log(max(p, ps[0])), np.log(ps), ds))


def impostor_record(impostor: Any, *, source: str) -> dict[str, Any]:
    """What a model keeps about its impostor distances: quantiles at per-pair rates 1e-6 to 0.5."""
    d = np.sort(np.asarray(impostor, np.float64).ravel())
    ps = np.unique(np.concatenate([np.logspace(-6, np.log10(0.5), 61), [1.0 / len(d)]]))
    ps = ps[ps >= 1.0 / len(d)]
    return {"p": ps.tolist(), "distance": np.quantile(d, ps).tolist(), "pairs": int(len(d)), "source": source}


def reject_radius(genuine: np.ndarray) -> float | None:
    """How near a probe must be to a rejected face to count as that face: half the 1st percentile
    of the genuine scores (None without same-person pairs)."""
    return 0.5 * float(np.quantile(genuine, 0.01)) if len(genuine) else None

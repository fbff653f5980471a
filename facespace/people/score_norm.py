"""Scoring rules on fixed per-fold codes under the LFW protocol: cohort score normalisation (S-norm)
whose cohort never holds the tested fold or the pair's own, and the protocol's numbers from per-fold
scores (`benchmarks/score_norm.py` drives them on an ensemble's kept per-fold models).

Scores are similarities (higher = more alike); `score` turns them into distances for the threshold
math of `facespace.people.thresholds`.
"""

from __future__ import annotations

import numpy as np

from facespace.people.thresholds import calibrate_threshold, pair_accuracy, roc_metrics


def snorm(codes: np.ndarray, ia, ib, fold, k: int, top: int) -> np.ndarray:
    """S-norm scores of all pairs under fold k's codes (cohort: folds other than the pair's and k)."""
    s = np.sum(codes[ia] * codes[ib], 1)
    out = np.empty_like(s)
    images = {j: np.union1d(ia[fold == j], ib[fold == j]) for j in np.unique(fold)}
    for j in np.unique(fold):
        cohort = np.unique(np.concatenate([images[f] for f in images if f not in (j, k)]))
        sims = codes[images[j]] @ codes[cohort].T  # (faces of fold j, cohort)
        if top:
            sims = -np.sort(-sims, axis=1)[:, :top]
        mu, sd = np.zeros(len(codes)), np.ones(len(codes))
        mu[images[j]], sd[images[j]] = sims.mean(1), sims.std(1)
        p = fold == j
        out[p] = 0.5 * ((s[p] - mu[ia[p]]) / sd[ia[p]] + (s[p] - mu[ib[p]]) / sd[ib[p]])
    return out


def score(scores: dict[int, np.ndarray], same, fold, far: float | None = None) -> dict:
    """The protocol on per-fold scores (higher = more alike): accuracy ± SE, AUC, own-best."""
    accs, best, tested = [], [], np.zeros(len(same))
    for k, s in scores.items():
        d, test = -s, fold == k
        t = calibrate_threshold(d[~test], same[~test], target_far=far)
        accs.append(pair_accuracy(d[test], same[test], t))
        best.append(pair_accuracy(d[test], same[test], calibrate_threshold(d[test], same[test])))
        tested[test] = d[test]
    scored = np.isin(fold, list(scores))  # the tested folds' pairs (all of them under the full protocol)
    _, _, auc, _, _ = roc_metrics(tested[scored], same[scored])
    a = np.array(accs)
    return {"mean_accuracy": float(a.mean()), "standard_error": float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan"),
            "auc": float(auc), "own_best": float(np.mean(best)), "fold_accuracies": [float(x) for x in a]}

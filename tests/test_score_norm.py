"""facespace.people.score_norm: cohort score normalisation that never lets a fold meet its own people."""

from __future__ import annotations


import numpy as np

from facespace.people import score_norm


def toy(seed=0):
    """3 folds of 4 pairs over 8 distinct images each; unit codes."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(24, 6))
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    fold = np.repeat([0, 1, 2], 4)
    ia = np.concatenate([np.arange(8 * f, 8 * f + 4) for f in range(3)])
    ib = ia + 4
    return codes, ia, ib, fold


def test_snorm_standardises_by_each_face_cohort():
    codes, ia, ib, fold = toy()
    got = score_norm.snorm(codes, ia, ib, fold, 0, 0)
    # pair 4 (fold 1) under fold 0's models: cohort = fold 2's images only
    a, b, cohort = ia[4], ib[4], np.arange(16, 24)
    s = codes[a] @ codes[b]
    za = (s - (codes[cohort] @ codes[a]).mean()) / (codes[cohort] @ codes[a]).std()
    zb = (s - (codes[cohort] @ codes[b]).mean()) / (codes[cohort] @ codes[b]).std()
    assert np.isclose(got[4], (za + zb) / 2)


def test_snorm_cohort_leaves_out_the_tested_fold_and_the_pairs_own():
    codes, ia, ib, fold = toy(1)
    base = score_norm.snorm(codes, ia, ib, fold, 0, 0)
    moved = codes.copy()
    moved[:8] = moved[0]  # every image of fold 0 (the tested fold) changed
    after = score_norm.snorm(moved, ia, ib, fold, 0, 0)
    np.testing.assert_allclose(after[fold != 0], base[fold != 0])  # never in another pair's cohort
    assert not np.allclose(after[fold == 0], base[fold == 0])
    moved = codes.copy()
    moved[16:24] = -moved[16:24]  # fold 2's faces: the cohort of fold 1's pairs, whose own cosines stay
    after = score_norm.snorm(moved, ia, ib, fold, 0, 0)
    assert not np.allclose(after[fold == 1], base[fold == 1])


def test_score_runs_the_protocol_on_each_folds_scores():
    rng = np.random.default_rng(2)
    same = np.tile([True, False], 150)
    fold = np.repeat(np.arange(3), 100)
    scores = {k: np.where(same, 0.6, 0.1) + rng.normal(0, 0.15, 300) for k in range(3)}
    r = score_norm.score(scores, same, fold)
    assert 0.9 < r["mean_accuracy"] <= r["own_best"] + 1e-9 and r["auc"] > 0.95 and len(r["fold_accuracies"]) == 3
    strict = score_norm.score(scores, same, fold, far=0.01)
    assert strict["mean_accuracy"] < r["mean_accuracy"]  # a 1 % FAR threshold turns many same pairs away


def test_score_on_one_tested_fold_uses_the_others_for_its_threshold():
    same = np.tile([True, False], 50)
    fold = np.repeat([0, 1], 50)
    s = np.where(same, 0.6, 0.1)
    s[fold == 0] += 0.3  # the calibration fold scores higher: its threshold sits too high for fold 1
    r = score_norm.score({1: s}, same, fold)
    assert len(r["fold_accuracies"]) == 1 and np.isnan(r["standard_error"])
    assert r["auc"] == 1.0  # over the tested fold's pairs only (the others are not scored under fold 1)
    assert r["mean_accuracy"] < r["own_best"] == 1.0

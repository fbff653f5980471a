"""CodeAdapter: a linear adaptation of fixed codes learned from labelled people."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.errors import FacespaceError, NotFittedError
from facespace.people.adaptation import CodeAdapter
from facespace.people.thresholds import calibrate_threshold, pair_accuracy


def _people(rng, n_people, per, d=16, noise_axes=4):
    """Codes where each person's photos vary mostly along a few shared directions (pose, light)."""
    centres = rng.normal(size=(n_people, d))
    nuisance = rng.normal(size=(noise_axes, d)) * 2.5
    labels = np.repeat(np.arange(n_people), per)
    codes = centres[labels] + rng.normal(size=(len(labels), noise_axes)) @ nuisance + 0.2 * rng.normal(size=(len(labels), d))
    return codes, labels


def _accuracy(codes, labels, rng):
    a = rng.integers(0, len(codes), 4000)
    b = rng.integers(0, len(codes), 4000)
    keep = a != b
    a, b = a[keep], b[keep]
    z = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    d = 1 - np.sum(z[a] * z[b], 1)
    same = labels[a] == labels[b]
    pairs = np.concatenate([np.flatnonzero(same)[:300], np.flatnonzero(~same)[:300]])
    return pair_accuracy(d[pairs], same[pairs], calibrate_threshold(d[pairs], same[pairs]))


@pytest.mark.parametrize("method", ["wccn", "lda"])
def test_adaptation_fitted_on_other_people_separates_new_people_better(method):
    codes, labels = _people(np.random.default_rng(2), 100, 7)
    fit = labels < 60  # fitted on 60 people, tested on 40 others sharing the nuisance directions
    adapter = CodeAdapter(method=method, shrinkage=0.01).fit(codes[fit], labels[fit])
    adapted = adapter.transform(codes[~fit])
    raw = _accuracy(codes[~fit], labels[~fit], np.random.default_rng(3))
    better = _accuracy(adapted, labels[~fit], np.random.default_rng(3))
    assert better > raw + 0.05, (raw, better)


def test_transform_gives_unit_codes_of_the_chosen_size():
    rng = np.random.default_rng(0)
    codes, labels = _people(rng, 30, 4)
    for method, k, want in (("center", None, 16), ("whiten", 8, 8), ("wccn", None, 16), ("lda", 50, 16), ("lda", 5, 5)):
        z = CodeAdapter(method=method, n_components=k).fit(codes, labels).transform(codes)
        assert z.shape == (len(codes), want) and z.dtype == np.float32
        assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_lda_keeps_at_most_people_minus_one_directions():
    rng = np.random.default_rng(0)
    codes, labels = _people(rng, 4, 10)
    assert CodeAdapter(method="lda").fit(codes, labels).components_.shape == (16, 3)


def test_bad_use_is_refused_with_what_to_do():
    rng = np.random.default_rng(0)
    codes, labels = _people(rng, 5, 3)
    with pytest.raises(NotFittedError, match="fit"):
        CodeAdapter().transform(codes)
    with pytest.raises(FacespaceError, match="expected one of"):
        CodeAdapter(method="plda").fit(codes, labels)
    with pytest.raises(FacespaceError, match="two people"):
        CodeAdapter().fit(codes[:3], labels[:3])
    fitted = CodeAdapter().fit(codes, labels)
    with pytest.raises(FacespaceError, match=r"\(n, 16\)"):
        fitted.transform(codes[:, :8])
    bad = codes.copy()
    bad[0, 0] = np.nan
    with pytest.raises(FacespaceError, match="finite"):
        CodeAdapter().fit(bad, labels)

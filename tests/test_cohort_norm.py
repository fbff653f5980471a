"""S-norm against a cohort (`facespace.people.cohort_norm`) and galleries that score with it."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.errors import FacespaceError
from facespace.models.pixels import PixelEncoder
from facespace.people.cohort_norm import CohortNorm
from facespace.people.distances import centroid_scores, cross_distances
from facespace.people.gallery.gallery import Gallery, GalleryError
from facespace.people.gallery.matching import calibrate_strangers, match_codes


def test_stats_are_the_mean_and_spread_of_the_nearest_cohort_distances():
    rng = np.random.default_rng(0)
    cohort, probes = rng.normal(size=(40, 6)), rng.normal(size=(5, 6))
    norm = CohortNorm(top_fraction=0.25).fit(cohort)
    assert norm.top == 10
    mean, spread = norm.stats(probes)
    d = np.sort(cross_distances(probes, cohort), axis=1)[:, :10]
    np.testing.assert_allclose(mean, d.mean(1), rtol=1e-5)
    np.testing.assert_allclose(spread, d.std(1), rtol=1e-4)


def test_normalise_is_the_mean_of_both_sides_z_scores():
    rng = np.random.default_rng(1)
    norm = CohortNorm(top_fraction=0.5).fit(rng.normal(size=(30, 4)))
    p, t = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    d = cross_distances(p, t)
    (mp, sp), (mt, st) = norm.stats(p), norm.stats(t)
    want = 0.5 * ((d - mp[:, None]) / sp[:, None] + (d - mt[None]) / st[None])
    np.testing.assert_allclose(norm.normalise(d, p, t), want)
    np.testing.assert_allclose(norm.normalise_pairs(d[:, 0], (mp, sp), (mt[[0, 0, 0]], st[[0, 0, 0]])), want[:, 0])


def test_bad_cohorts_and_unfitted_use_are_refused():
    with pytest.raises(FacespaceError, match="not fitted"):
        CohortNorm().stats(np.zeros((1, 3)))
    with pytest.raises(FacespaceError, match="at least"):
        CohortNorm().fit(np.ones((5, 3)))
    bad = np.ones((30, 3))
    bad[2, 1] = np.nan
    with pytest.raises(FacespaceError, match="NaN"):
        CohortNorm().fit(bad)
    with pytest.raises(FacespaceError, match="top_fraction"):
        CohortNorm(top_fraction=0.0).fit(np.random.default_rng(0).normal(size=(30, 3)))
    with pytest.raises(FacespaceError, match="dimension"):
        CohortNorm().fit(np.random.default_rng(0).normal(size=(30, 3))).stats(np.zeros((2, 4)))


def scaled_world(seed=0, d=8, people=6):
    """A region of people and a copy of it shrunk to half size far away (l2): the crowded copy's
    distances are all half the original's, as a model places the faces of a population it saw
    little of closer together. Returns (enrolled, person, probes, cohort), the copy's rows second."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, d))
    enrolled = np.repeat(centres, 3, axis=0) + 0.3 * rng.normal(size=(people * 3, d))
    probes = np.repeat(centres, 2, axis=0) + 0.3 * rng.normal(size=(people * 2, d))
    cohort = rng.normal(size=(40, d))
    far = np.full(d, 100.0)

    def copy(x):
        return np.concatenate([x, 0.5 * x + far]).astype(np.float32)

    person = np.concatenate([np.repeat(np.arange(people), 3), people + np.repeat(np.arange(people), 3)])
    return copy(enrolled), person, copy(probes), copy(cohort)


def test_snorm_scores_a_crowded_copy_of_a_region_exactly_as_the_region_itself():
    enrolled, person, probes, cohort = scaled_world()
    names = [f"p{i}" for i in range(12)]
    half = len(probes) // 2
    # top 40 % of a cohort split half and half: each face's statistics come from its own region only
    norm = CohortNorm(top_fraction=0.4, metric="l2").fit(cohort)
    plain = match_codes(probes, enrolled, person, names, threshold=np.inf, metric="l2", k=3, scoring="centroid")
    normed = match_codes(probes, enrolled, person, names, threshold=np.inf, metric="l2", k=3, scoring="snorm",
                         cohort=norm)
    for a, b in zip(plain[:half], plain[half:]):  # plain distances: the copy's are half
        np.testing.assert_allclose([d for _, d in b.candidates], [0.5 * d for _, d in a.candidates], rtol=1e-4)
    for a, b in zip(normed[:half], normed[half:]):  # normalised: the same scores, the same ranking
        assert [int(n[1:]) + 6 for n, _ in a.candidates] == [int(n[1:]) for n, _ in b.candidates]
        np.testing.assert_allclose([d for _, d in b.candidates], [d for _, d in a.candidates], rtol=1e-3, atol=1e-4)


def test_centroid_scores_with_a_cohort_are_the_same_for_a_region_and_its_crowded_copy():
    enrolled, person, _, cohort = scaled_world(seed=2)
    norm = CohortNorm(top_fraction=0.4, metric="l2").fit(cohort)
    half = len(enrolled) // 2
    g_plain, _ = centroid_scores(enrolled, person, metric="l2")
    g_norm, i_norm = centroid_scores(enrolled, person, metric="l2", cohort=norm)
    np.testing.assert_allclose(g_plain[half:], 0.5 * g_plain[:half], rtol=1e-4)
    np.testing.assert_allclose(g_norm[half:], g_norm[:half], rtol=1e-3, atol=1e-4)
    assert np.median(g_norm) < np.median(i_norm)  # a face is nearer its own person than anyone else


def test_a_snorm_gallery_keeps_its_cohort_and_answers_the_same_after_reopening(tmp_path):
    rng = np.random.default_rng(3)
    model = PixelEncoder(size=4, channels=1)
    path = tmp_path / "people.db"
    cohort = rng.random((60, 16)).astype(np.float32)
    base = {n: rng.random((1, 4, 4, 1), dtype=np.float32) for n in "abcdef"}
    with Gallery(path, model, scoring="snorm", cohort=cohort) as g:
        for n, b in base.items():
            g.enroll(n, np.clip(b + 0.02 * rng.normal(size=(3, 4, 4, 1)), 0, 1).astype(np.float32), force=True)
        probes = np.clip(base["c"] + 0.02 * rng.normal(size=(2, 4, 4, 1)), 0, 1).reshape(2, 16).astype(np.float32)
        first = g.identify_codes(probes)
        threshold = g.threshold
    assert first[0].candidates[0][0] == "c"
    with Gallery(path, model) as g:  # the cohort is read from the file, not the model
        assert g.scoring == "snorm" and len(g.cohort().cohort_) == 60
        assert g.identify_codes(probes) == first
    with Gallery(path) as g:  # no model: removing someone recalibrates with the kept cohort
        g.remove("f")
        codes, who, _ = g.codes()
        want, _, _ = calibrate_strangers(codes, who, metric="cosine", target_far=0.01, scoring="snorm",
                                         cohort=CohortNorm(top_fraction=0.6).fit(cohort))
        assert threshold is not None and g.threshold == pytest.approx(want, rel=1e-3)


def test_snorm_without_a_cohort_says_how_to_get_one(tmp_path):
    with pytest.raises(GalleryError, match="cohort"):
        Gallery(tmp_path / "g.db", PixelEncoder(size=4, channels=1), scoring="snorm")
    assert not (tmp_path / "g.db").exists()  # nothing written

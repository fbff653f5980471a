"""A gallery too small to calibrate itself takes its stranger threshold from the model's own
impostor distances (measured on people the model never saw)."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.people.gallery.matching import calibrate_strangers
from facespace.people.thresholds import impostor_record, stranger_threshold, threshold_from_impostors


def test_the_threshold_from_impostor_quantiles_keeps_the_target_for_the_gallery_size():
    rng = np.random.default_rng(0)
    impostor = rng.normal(1.0, 0.1, 200_000)  # per-pair impostor distances of a model
    record = impostor_record(impostor, source="test")
    for n_faces, far in ((1, 0.01), (30, 0.01), (300, 0.05)):
        t = threshold_from_impostors(record, n_faces, far)
        # strangers compared with n_faces enrolled faces: the share named is near the target
        trials = rng.normal(1.0, 0.1, (20_000, n_faces)).min(1)
        assert abs((trials <= t).mean() - far) < 0.35 * far + 0.002, (n_faces, (trials <= t).mean())
    assert threshold_from_impostors(record, 300, 0.01) < threshold_from_impostors(record, 3, 0.01)


def _two_photos_each(seed: int, n_people: int):
    """Codes of `n_people` with two photos each, and a model's impostor record."""
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(n_people, 8))
    person = np.repeat(np.arange(n_people), 2)
    codes = (people[person] + 0.05 * rng.normal(size=(2 * n_people, 8))).astype(np.float32)
    return codes, person, impostor_record(rng.uniform(0.3, 1.2, 50_000), source="unseen people")


def test_a_small_gallery_uses_the_model_record_and_says_so():
    codes, person, record = _two_photos_each(1, 15)
    t_self, facts_self, _ = calibrate_strangers(codes, person, metric="cosine", target_far=0.01)
    t, facts, _ = calibrate_strangers(codes, person, metric="cosine", target_far=0.01, model_impostors=record)
    assert facts_self["source"] == "gallery" and facts["source"] == "model"
    assert t == pytest.approx(threshold_from_impostors(record, 30, 0.01))
    # with the confidence guarantee out of reach the gallery's own threshold sits under its smallest impostor score
    assert stranger_threshold(np.ones(30), 0.01)[1] == 0
    # one person is enough when the model knows its strangers
    t_one, facts_one, _ = calibrate_strangers(codes[:2], person[:2], metric="cosine", target_far=0.01,
                                              model_impostors=record)
    assert facts_one["source"] == "model" and t_one is not None


def test_a_large_gallery_calibrates_itself_even_with_a_model_record():
    codes, person, record = _two_photos_each(2, 400)
    _, facts, _ = calibrate_strangers(codes, person, metric="cosine", target_far=0.01, model_impostors=record)
    assert facts["source"] == "gallery"


def test_centroid_scoring_names_people_by_the_mean_of_their_codes():
    from facespace.people.distances import centroid_scores, person_centroids
    from facespace.people.gallery.matching import match_codes

    codes = np.array([[1, 0], [0.8, 0.6], [0, 1], [-0.6, 0.8]], np.float32)
    person = np.array([0, 0, 1, 1])
    people, cents = person_centroids(codes, person, metric="cosine")
    assert people.tolist() == [0, 1] and np.allclose(np.linalg.norm(cents, axis=1), 1)
    probe = np.array([[0.95, 0.3]], np.float32)
    r = match_codes(probe, codes, person, ["a", "b"], threshold=0.2, scoring="centroid")[0]
    mean_a = codes[:2].mean(0) / np.linalg.norm(codes[:2].mean(0))
    assert r.name == "a" and r.distance == pytest.approx(1 - probe[0] @ mean_a / np.linalg.norm(probe[0]), abs=1e-6)
    genuine, impostor = centroid_scores(codes, person, metric="cosine")
    # leave-one-out: face 0's own centroid is face 1 alone
    assert genuine[0] == pytest.approx(1 - codes[0] @ codes[1], abs=1e-6)
    assert len(genuine) == 4 and len(impostor) == 4


def test_a_centroid_gallery_keeps_its_scoring_and_names_the_enrolled(tmp_path):
    from facespace.models.pixels import PixelEncoder
    from facespace.people.gallery.gallery import Gallery

    rng = np.random.default_rng(0)
    model = PixelEncoder(size=4, channels=1)
    faces = {f"p{i}": np.clip(rng.random((1, 4, 4, 1)) + 0.05 * rng.normal(size=(3, 4, 4, 1)), 0, 1).astype(np.float32)
             for i in range(5)}
    with Gallery(tmp_path / "g.db", model, scoring="centroid") as g:
        g.enroll_many({n: x for n, x in faces.items()}, force=True)
        assert g.scoring == "centroid"
    with Gallery(tmp_path / "g.db", model) as g:  # reopened: the scoring is the file's
        assert g.scoring == "centroid"
        found = g.identify(np.concatenate([x[:1] for x in faces.values()]), max_distance=0.05)
        assert [r.name for r in found] == list(faces)
    with pytest.raises(Exception, match="unknown scoring"):
        Gallery(tmp_path / "h.db", model, scoring="median").enroll("x", faces["p0"], force=True)

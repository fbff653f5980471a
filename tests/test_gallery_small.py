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


def test_a_small_gallery_uses_the_model_record_and_says_so():
    rng = np.random.default_rng(1)
    people = rng.normal(size=(15, 8))
    person = np.repeat(np.arange(15), 2)
    codes = (people[person] + 0.05 * rng.normal(size=(30, 8))).astype(np.float32)
    record = impostor_record(rng.uniform(0.3, 1.2, 50_000), source="unseen people")
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
    rng = np.random.default_rng(2)
    people = rng.normal(size=(400, 8))
    person = np.repeat(np.arange(400), 2)
    codes = (people[person] + 0.05 * rng.normal(size=(800, 8))).astype(np.float32)
    record = impostor_record(rng.uniform(0.3, 1.2, 50_000), source="unseen people")
    _, facts, _ = calibrate_strangers(codes, person, metric="cosine", target_far=0.01, model_impostors=record)
    assert facts["source"] == "gallery"

"""The sampled calibration of large galleries (`facespace.people.gallery.sampled`): each sampled
face's scores exact through enrol, remove and replace, and at rate one the full computation's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facespace.people.distances import centroid_scores, cross_distances, open_set_scores
from facespace.people.gallery import sampled
from facespace.people.gallery.gallery import Gallery
from facespace.people.gallery.gallery_index import read_rows
from facespace.people.gallery.matching import calibrate_strangers

from gallery_helpers import CodeEncoder, enrol, people_codes  # noqa: E402


def sample_rows(g: Gallery) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in g.db.execute("SELECT * FROM calibration_sample")}


@pytest.mark.parametrize("scoring", ["nearest", "centroid"])
def test_sampled_calibration_keeps_each_sampled_face_exact(tmp_path, monkeypatch, scoring):
    monkeypatch.setattr(sampled, "FULL_MAX_FACES", 30)
    monkeypatch.setattr(sampled, "SAMPLE_FACES", 20)
    rng = np.random.default_rng(7)
    faces = people_codes(rng, 60, 3)
    g = Gallery(tmp_path / "g.db", CodeEncoder(), scoring=scoring)
    for step in range(20):
        enrol(g, faces[3 * step : 3 * step + 3], first=3 * step)
        if step == 8:
            g.remove("p4")
        if step == 12:
            g.enroll("p10", faces[10][:2] * 0.5 + faces[11][:2] * 0.5, replace=True, force=True)
        face_ids, person, codes = read_rows(g.db, None, 16)
        if len(codes) <= 30:
            t, _, radius = calibrate_strangers(codes, person, metric="cosine", target_far=0.01, scoring=scoring)
            assert g.threshold == t and not sample_rows(g)  # small galleries: exactly as before
            continue
        rows = sample_rows(g)
        assert 0 < len(rows) < 40 and set(rows) <= set(face_ids.tolist())
        expected = set(face_ids[sampled.in_sample(face_ids, sampled.rate_for(len(codes)))].tolist())
        assert set(rows) == expected
        if len(codes) < 40:  # rate 1: every face sampled, the threshold the full computation gives
            t, _, radius = calibrate_strangers(codes, person, metric="cosine", target_far=0.01, scoring=scoring)
            assert g.threshold == pytest.approx(t, abs=1e-9)
        for f, (p, near, genuine, impostor, impostor_of) in rows.items():
            i = int(np.searchsorted(face_ids, f))
            d = cross_distances(codes[i : i + 1], codes)[0]
            d[i] = np.inf
            mine = person == p
            assert near == (pytest.approx(d[mine].min(), abs=1e-9) if mine.sum() > 1 else None)
            if scoring == "nearest":
                assert impostor == pytest.approx(d[~mine].min(), abs=1e-9)
                assert impostor_of == person[~mine][d[~mine].argmin()]
        if scoring == "centroid":  # against centroid_scores over every face, for the sampled ones
            gen, imp = centroid_scores(codes, person, metric="cosine")
            got_imp = sorted(r[3] for r in rows.values())
            assert set(np.round(got_imp, 9)) <= set(np.round(imp, 9))
        assert json.loads(g.meta.get("calibration") or dict(g.db.execute(
            "SELECT key, value FROM meta WHERE key = 'calibration'"))["calibration"])["sampled_faces"] == len(rows)


def test_open_set_scores_of_the_sample_match_the_full_ones_at_rate_one(tmp_path, monkeypatch):
    monkeypatch.setattr(sampled, "FULL_MAX_FACES", 10)
    rng = np.random.default_rng(8)
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, people_codes(rng, 10, 3))
    _, person, codes = read_rows(g.db, None, 16)
    genuine, impostor = open_set_scores(codes, person)
    rows = sample_rows(g)
    np.testing.assert_allclose(sorted(r[3] for r in rows.values()), np.sort(impostor), atol=1e-9)
    np.testing.assert_allclose(sorted(r[1] for r in rows.values()), np.sort(genuine), atol=1e-9)

"""S-norm galleries through the index (`facespace.people.gallery.shortlist`): the same answers as
the full S-norm scan through enrol, remove, reject, replace and reopening, with shortlists that
must grow; nearly the same through an HNSW graph; a gallery whose kept person statistics are
behind (changed by an older facespace) scanned in full until its next change; the sampled
calibration of large S-norm galleries with the full computation's scores."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.people.distances import centroid_scores, person_centroids
from facespace.people.gallery import gallery_index, sampled, shortlist
from facespace.people.gallery.gallery import Gallery
from facespace.people.gallery.matching import calibrate_strangers
from facespace.people.gallery.person_stats import read_person_stats
from facespace.people.gallery.store import read_rows

from gallery_helpers import CodeEncoder, assert_same, change, enrol, full_scan, people_codes, probes_for  # noqa: E402


def cohort_codes(seed: int = 0, m: int = 200, dim: int = 16) -> np.ndarray:
    """`(m, dim)` unit codes, half of them crowded on one side: people's statistics differ."""
    c = np.random.default_rng(seed).normal(size=(m, dim))
    c[: m // 2, :4] += 1.0
    return (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)


def snorm_gallery(path, metric: str = "cosine") -> Gallery:
    return Gallery(path, CodeEncoder(), scoring="snorm", metric=metric, cohort=cohort_codes())


def reopened(path) -> Gallery:
    gallery_index.forget_held()
    return Gallery(path, CodeEncoder())


@pytest.mark.parametrize("metric,max_k,rounding", [("cosine", 64, None), ("l2", 64, None), ("cosine", 64, 1e-2),
                                                   ("cosine", 4, 1e-2), ("l2", 4, None)])
def test_an_snorm_gallery_names_probes_as_the_full_scan_through_every_change(tmp_path, monkeypatch, metric, max_k,
                                                                             rounding):
    monkeypatch.setattr(shortlist, "FIRST_K", 4)  # shortlists that must grow (64), or that never close (4)
    monkeypatch.setattr(shortlist, "MAX_K", max_k)
    if rounding:  # cosine: a wider margin, so that shortlists through the S-norm index must grow too
        monkeypatch.setattr(shortlist, "LIFTED_ROUNDING", rounding)
    rng = np.random.default_rng(30)
    path = tmp_path / "g.db"
    g = snorm_gallery(path, metric)
    faces = people_codes(rng, 80, 4, spread=1.0)
    enrol(g, faces[:50])
    for step in range(6):
        change(g, faces, step, split=50, first=50, own_threshold=-3.0)
        if step == 5:
            g.close()
            g = reopened(path)  # the snapshot and the kept statistics, as another process reads them
        probes = probes_for(g, rng)
        if step == 3:
            probes[:2] = g.rejections()[0] + 1e-4
        for k in (1, 5):
            assert_same(g.identify_codes(probes, k=k), full_scan(g, probes, k=k))
        assert_same(g.identify_codes(probes, max_distance=-2.0), full_scan(g, probes, max_distance=-2.0))
        assert g.gallery_index().held.stats is not None  # answered through the index, not the scan
    assert g.gallery_index().rebuilt == 0  # reopened: the snapshot loaded


def test_the_kept_statistics_are_those_the_full_scan_computes(tmp_path):
    rng = np.random.default_rng(31)
    g = snorm_gallery(tmp_path / "g.db")
    faces = people_codes(rng, 20, 3)
    enrol(g, faces[:12])
    g.remove("p4")
    enrol(g, faces[12:], first=12)
    g.enroll("p5", faces[5][:1], replace=True, force=True)
    _, person, codes = read_rows(g.db, None, 16)
    people, centroids = person_centroids(codes, person, metric="cosine")
    kept = read_person_stats(g.db)
    mean, spread = g.cohort().stats(centroids)
    assert kept.ids.tolist() == people.tolist()
    np.testing.assert_allclose(kept.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kept.spread, spread, rtol=0, atol=1e-12)


def test_an_snorm_gallery_through_an_hnsw_index_names_nearly_every_probe_as_the_scan(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery_index, "EXACT_MAX_ITEMS", 40)
    rng = np.random.default_rng(32)
    g = snorm_gallery(tmp_path / "g.db")
    enrol(g, people_codes(rng, 150, 3, spread=0.3))
    probes = probes_for(g, rng, 100)
    found, expected = g.identify_codes(probes), full_scan(g, probes)
    assert g.gallery_index().index.backend == "hnsw"
    assert np.mean([a.name == b.name for a, b in zip(found, expected)]) >= 0.95


def test_a_person_longer_than_the_lifted_length_rebuilds_the_index(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery_index, "RADIUS_ROOM", 1.0)  # no room: a new person longer than all rebuilds
    rng = np.random.default_rng(35)
    g = snorm_gallery(tmp_path / "g.db")
    faces = people_codes(rng, 70, 3)
    enrol(g, faces[:20])
    for step in range(5):
        probes = probes_for(g, rng)
        assert_same(g.identify_codes(probes), full_scan(g, probes))
        enrol(g, faces[20 + 10 * step : 30 + 10 * step], first=20 + 10 * step)
    assert g.gallery_index().rebuilt >= 2 and g.gallery_index().held.radius > 0


def test_an_snorm_gallery_whose_statistics_are_behind_is_scanned_until_its_next_change(tmp_path):
    rng = np.random.default_rng(33)
    path = tmp_path / "g.db"
    g = snorm_gallery(path)
    faces = people_codes(rng, 30, 3)
    enrol(g, faces[:20])
    g.db.execute("UPDATE meta SET value = '1' WHERE key = 'person_stats_generation'")  # as an older writer leaves it
    g = reopened(path)
    probes = probes_for(g, rng)
    assert_same(g.identify_codes(probes), full_scan(g, probes))
    assert g.gallery_index().held.stats is None  # the full scan answered
    enrol(g, faces[20:], first=20)
    assert_same(g.identify_codes(probes), full_scan(g, probes))
    assert g.gallery_index().held.stats is not None


@pytest.mark.parametrize("sample_faces", [20, 1000])
def test_an_snorm_gallery_is_calibrated_on_a_sample_with_the_full_computations_scores(tmp_path, monkeypatch,
                                                                                       sample_faces):
    monkeypatch.setattr(sampled, "FULL_MAX_FACES", 30)
    monkeypatch.setattr(sampled, "SAMPLE_FACES", sample_faces)  # 1000: every face sampled (rate one)
    rng = np.random.default_rng(34)
    faces = people_codes(rng, 60, 3)
    g = snorm_gallery(tmp_path / "g.db")
    for step in range(14):
        enrol(g, faces[3 * step : 3 * step + 3], first=3 * step)
        if step == 8:
            g.remove("p4")
        if step == 10:
            g.enroll("p10", faces[10][:2] * 0.5 + faces[11][:2] * 0.5, replace=True, force=True)
        face_ids, person, codes = read_rows(g.db, None, 16)
        rows = np.array([r[1:] for r in g.db.execute("SELECT * FROM calibration_sample")], np.float64)
        full_t, _, _ = calibrate_strangers(codes, person, metric="cosine", target_far=0.01, scoring="snorm",
                                           cohort=g.cohort())
        if len(codes) <= 30:
            assert g.threshold == full_t and not len(rows)  # small galleries: exactly as before
            continue
        expected = face_ids[sampled.in_sample(face_ids, sampled.rate_for(len(codes)))]
        assert sorted(r[0] for r in g.db.execute("SELECT face_id FROM calibration_sample")) == expected.tolist()
        genuine, impostor = centroid_scores(codes, person, metric="cosine", cohort=g.cohort())
        got_genuine, got_impostor = rows[:, 2][np.isfinite(rows[:, 2])], rows[:, 3]
        if sample_faces == 1000:  # every face: the full computation's scores and threshold
            np.testing.assert_allclose(np.sort(got_impostor), np.sort(impostor), rtol=0, atol=1e-5)
            np.testing.assert_allclose(np.sort(got_genuine), np.sort(genuine), rtol=0, atol=1e-5)
            assert g.threshold == pytest.approx(full_t, abs=1e-5)
        else:  # each sampled face's scores are among the full computation's
            assert np.abs(got_impostor[:, None] - impostor[None, :]).min(1).max() < 1e-5
            assert np.abs(got_genuine[:, None] - genuine[None, :]).min(1).max() < 1e-5


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_one_person_snorm_gallery_answers_as_the_scan(tmp_path, where):
    rng = np.random.default_rng(36)
    g = snorm_gallery(tmp_path / "g.db" if where == "file" else ":memory:")
    enrol(g, people_codes(rng, 1, 3))
    probes = probes_for(g, rng, 6)
    assert_same(g.identify_codes(probes, max_distance=0.0), full_scan(g, probes, max_distance=0.0))
    assert g.gallery_index().held.stats is not None

"""Verification: distances, threshold calibration, the threshold stored with the model, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from people_helpers import TinyConfig, TinyEncoder, faces_of, patterns
from PIL import Image

from facespace.models.registry import load_model, save_model
from facespace.checkpoint import read_checkpoint
from facespace.errors import DataError, FacespaceError
from facespace.models.pixels import PixelEncoder
from facespace.people.verification import calibrate, stored_threshold, verify
from facespace.people.thresholds import calibrate_threshold, pair_accuracy
from facespace.people.distances import cross_distances, pair_distances


def test_pair_distances_known_answers():
    a = np.array([[1, 0], [1, 1], [3, 4]], np.float32)
    b = np.array([[0, 2], [2, 2], [3, 4]], np.float32)
    np.testing.assert_allclose(pair_distances(a, b), [1.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(pair_distances(a, b, metric="l2"), [np.sqrt(5), 1.4142135, 0.0], atol=1e-6)
    np.testing.assert_allclose(cross_distances(a, b)[0], [1.0, 1 - 1 / np.sqrt(2), 1 - 0.6], atol=1e-7)
    with pytest.raises(FacespaceError, match="unknown metric 'cos'"):
        pair_distances(a, b, metric="cos")


def test_accuracy_threshold_lies_between_the_classes():
    d = np.array([0.1, 0.2, 0.25, 0.6, 0.7, 0.9])
    same = np.array([True, True, True, False, False, False])
    t = calibrate_threshold(d, same)
    assert t == pytest.approx((0.25 + 0.6) / 2)
    assert pair_accuracy(d, same, t) == 1.0


def test_accuracy_threshold_is_best_on_overlap(rng):
    d = np.concatenate([rng.normal(0.3, 0.1, 300), rng.normal(0.6, 0.1, 300)])
    same = np.repeat([True, False], 300)
    t = calibrate_threshold(d, same)
    best = max(pair_accuracy(d, same, c) for c in np.unique(d))
    assert pair_accuracy(d, same, t) == pytest.approx(best)


def test_target_far_threshold_admits_at_most_that_many_impostors(rng):
    impostor = rng.random(1000)
    d = np.concatenate([impostor, rng.random(50) * 0.1])
    same = np.r_[np.zeros(1000, bool), np.ones(50, bool)]
    for far in (0.0, 0.01, 0.1):
        t = calibrate_threshold(d, same, target_far=far)
        accepted = int((impostor <= t).sum())
        assert accepted == int(far * 1000)  # as many as allowed, no more
    with pytest.raises(FacespaceError, match="target_far"):
        calibrate_threshold(d, same, target_far=1.5)


def test_calibration_refuses_one_class_and_mismatch():
    with pytest.raises(FacespaceError, match="both"):
        calibrate_threshold([0.1, 0.2], [True, True])
    with pytest.raises(FacespaceError, match="differ in length"):
        calibrate_threshold([0.1, 0.2], [True])


def test_verify_same_and_different_person(rng):
    enc = TinyEncoder()
    a, b = patterns(2, 16)
    x = faces_of(a, 2, rng)
    y = faces_of(b, 1, rng)
    d_same, same = verify(enc, x[0], x[1], max_distance=0.3)
    d_diff, diff = verify(enc, x[0], y[0], max_distance=0.3)
    assert same and not diff and d_same < d_diff
    with pytest.raises(FacespaceError, match="no calibrated verification threshold"):
        verify(enc, x[0], x[1])


def test_threshold_stored_in_checkpoint_round_trip(tmp_path, rng):
    enc = TinyEncoder(TinyConfig(seed=3))
    path = save_model(enc, tmp_path / "tiny.safetensors", step=7, extra={"keep": 1})
    model = load_model(path)
    bases = patterns(6, 16, seed=1)
    a = np.concatenate([faces_of(b, 2, rng) for b in bases])
    pa, pb = a[0::2], a[1::2]  # 6 genuine pairs
    na, nb = a[0:10:2], a[2:12:2]  # 5 impostor pairs
    t = calibrate(model, np.concatenate([pa, na]), np.concatenate([pb, nb]), [True] * 6 + [False] * 5, save=True)
    meta, tensors = read_checkpoint(path)
    assert meta["extra"]["verify"]["threshold"] == pytest.approx(t)
    assert meta["extra"]["keep"] == 1 and meta["step"] == 7  # the rest of the checkpoint survives
    np.testing.assert_array_equal(tensors["weight"].numpy(), enc.weight)
    again = load_model(path)
    assert stored_threshold(again)["threshold"] == pytest.approx(t)
    d, same = verify(again, pa[0], pb[0])
    assert same and d <= t
    assert not verify(again, na[0], nb[0])[1]


def test_verify_refuses_unusable_images(tmp_path, rng):
    enc = PixelEncoder(size=16, channels=1)
    good = faces_of(patterns(1, 16)[0], 1, rng)[0]
    with pytest.raises(DataError, match="blank"):
        verify(enc, good, np.full((16, 16, 1), 0.5, np.float32), max_distance=0.1)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tiny)
    with pytest.raises(DataError, match="too small"):
        verify(enc, good, tiny, max_distance=0.1)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(DataError, match="not an image"):
        verify(enc, good, text, max_distance=0.1)
    with pytest.raises(DataError, match="no such image"):
        verify(enc, good, tmp_path / "missing.png", max_distance=0.1)
    with pytest.raises(FacespaceError, match="shape"):
        verify(enc, good, np.zeros((8, 8, 1), np.float32) + good[:8, :8], max_distance=0.1)


def test_verify_reads_image_files(tmp_path, rng):
    base = patterns(2, 40, 3)
    paths = []
    for i, img in enumerate([*faces_of(base[0], 2, rng), faces_of(base[1], 1, rng)[0]]):
        p = tmp_path / f"{i}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(p)
        paths.append(p)
    enc = TinyEncoder(TinyConfig(channels=3))
    assert verify(enc, paths[0], paths[1], max_distance=0.3)[1]
    assert not verify(enc, paths[0], paths[2], max_distance=0.3)[1]

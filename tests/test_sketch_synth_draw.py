import numpy as np
import pytest

from facespace.data.sketch_synth import KINDS, make_face_sketches
from facespace.data.strokes import bounding_extent, check_stroke3, stroke3_to_lines
from facespace.errors import DataError
from facespace.data.sketch_draw import pairs_grid, render_sketch, render_sketches, save_sketch_grid, save_sketch_svg, sketch_svg


@pytest.fixture(scope="module")
def faces():
    return make_face_sketches(60, seed=5)


def test_synthetic_faces_are_valid_labelled_and_reproducible(faces):
    assert len(faces) == 60
    for part, kinds in KINDS.items():
        assert faces.labels[part].min() >= 0 and faces.labels[part].max() < len(kinds)
        assert len(np.unique(faces.labels[part])) == len(kinds)  # every kind occurs in 60 faces
    for s in faces.strokes:
        check_stroke3(s)
    again = make_face_sketches(60, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(faces.strokes, again.strokes))
    assert not np.array_equal(faces.strokes[0], make_face_sketches(1, seed=6).strokes[0])


def test_synthetic_size_and_part_strokes_are_what_the_labels_say(faces):
    # the outline (first stroke) is as wide as the size label says
    widths = np.array([np.ptp(stroke3_to_lines(s)[0][:, 0]) for s in faces.strokes])
    np.testing.assert_allclose(widths, faces.labels["size"], rtol=0.12)
    assert all(bounding_extent(s) >= w - 1e-3 for s, w in zip(faces.strokes, widths))
    # stroke count = outline 1 + ears 0/2 + eyes 2 (4 for crosses) + nose 0/1 + mouth 1
    n = np.array([len(stroke3_to_lines(s)) for s in faces.strokes])
    want = 1 + 2 * (faces.labels["ears"] > 0) + np.where(faces.labels["eyes"] == 3, 4, 2) + (faces.labels["nose"] > 0) + 1
    np.testing.assert_array_equal(n, want)
    with pytest.raises(DataError):
        make_face_sketches(3, min_size=10, max_size=5)


def test_equal_counts_leave_the_probed_kinds_nothing_to_count():
    """With equal_counts the eyes, nose and mouth of every kind are the same strokes of the same points,
    so point and stroke counts depend on the outline and ears alone (the probe can fail)."""
    from facespace.data.sketch_synth import EYE_POINTS, KINDS_EQUAL, MOUTH_POINTS, NOSE_POINTS

    faces = make_face_sketches(80, seed=7, equal_counts=True)
    lines = [stroke3_to_lines(s) for s in faces.strokes]
    ears = faces.labels["ears"]
    parts = [ls[1 + 2 * (e > 0):] for ls, e in zip(lines, ears)]  # after the outline and the ears
    assert all([len(p) for p in face] == [EYE_POINTS, EYE_POINTS, NOSE_POINTS, MOUTH_POINTS] for face in parts)
    for part in ("eyes", "nose", "mouth"):
        assert len(np.unique(faces.labels[part])) == len(KINDS_EQUAL[part])  # every kind occurs
    counts = np.array([len(s) for s in faces.strokes])
    for e in np.unique(ears):  # the same ears: the same number of points whatever the eyes, nose and mouth
        assert len(np.unique(counts[ears == e])) == 1
    assert faces.label_names["eyes"] == KINDS_EQUAL["eyes"] and "equal counts" in faces.source


def test_render_draws_lines_scaled_to_fit():
    square = np.array([[10, 0, 0], [0, 10, 0], [-10, 0, 0], [0, -10, 1]], np.float32)
    img = render_sketch(square, size=32, margin=2)
    assert img.shape == (32, 32, 1) and img.dtype == np.float32
    assert img.min() < 0.3 and img[16, 16, 0] == pytest.approx(1.0)  # lines dark, middle white
    big = render_sketch(square * np.array([50, 50, 1], np.float32), size=32, margin=2)
    np.testing.assert_allclose(img, big, atol=1e-6)  # any units draw the same
    assert (render_sketch(np.zeros((0, 3), np.float32), size=8) == 1).all()


def test_grids_and_svg(tmp_path, faces):
    imgs = render_sketches(faces.strokes[:5], size=24)
    assert imgs.shape == (5, 24, 24, 1)
    path = save_sketch_grid(faces.strokes[:6], tmp_path / "g.png", size=24, ncols=3)
    from PIL import Image

    assert Image.open(path).size == (3 * 24 + 4 * 2, 2 * 24 + 3 * 2)
    grid = pairs_grid(faces.strokes[:3], faces.strokes[3:6], size=16, ncols=2)
    assert grid.shape == (4 * 16 + 5 * 2, 2 * 16 + 3 * 2, 3)
    svg = sketch_svg(faces.strokes[0])
    assert svg.count("<polyline") == len(stroke3_to_lines(faces.strokes[0]))
    assert save_sketch_svg(faces.strokes[0], tmp_path / "a.svg").read_text() == svg

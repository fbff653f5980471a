import numpy as np
import pytest

from facespace.data.strokes import (
    bounding_extent,
    check_stroke3,
    collate_strokes,
    fit_unit_box,
    limit_length,
    lines_to_stroke3,
    normalize,
    offset_scale,
    pad_batch,
    raw_to_stroke3,
    rdp,
    stroke3_to_lines,
    stroke3_to_stroke5,
    stroke5_to_stroke3,
)
from facespace.errors import DataError


def random_lines(rng, n_strokes=3):
    return [rng.normal(0, 20, (rng.integers(1, 8), 2)).astype(np.float32) for _ in range(n_strokes)]


def test_rdp_drops_collinear_points_and_keeps_corners():
    line = np.array([[0, 0], [1, 0.01], [2, 0], [3, 0], [3, 5]], float)
    out = rdp(line, 0.5)
    assert out.tolist() == [[0, 0], [3, 0], [3, 5]]
    assert len(rdp(line, 0.001)) == 5  # a tiny epsilon keeps the slightly bent point
    assert rdp(line[:2], 10).shape == (2, 2)


def test_rdp_bound_holds_on_random_polyline(rng):
    line = np.cumsum(rng.normal(0, 1, (200, 2)), axis=0)
    eps = 1.5
    kept = rdp(line, eps)
    idx = [int(np.flatnonzero((line == p).all(1))[0]) for p in kept]
    assert idx[0] == 0 and idx[-1] == len(line) - 1 and idx == sorted(idx)
    # every dropped point lies within eps of the line through the kept points around it
    for i, j in zip(idx[:-1], idx[1:]):
        a, b = line[i], line[j]
        ab, rel = b - a, line[i + 1 : j] - a
        d = np.abs(ab[0] * rel[:, 1] - ab[1] * rel[:, 0]) / np.linalg.norm(ab)
        assert (d <= eps + 1e-9).all()
    assert len(kept) < len(line) / 2


def test_lines_stroke3_round_trip(rng):
    lines = random_lines(rng)
    lines = [line - lines[0][0] for line in lines]  # stroke-3 starts at the origin
    back = stroke3_to_lines(lines_to_stroke3(lines))
    assert len(back) == len(lines)
    for a, b in zip(lines, back):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_stroke5_round_trip_and_padding(rng):
    s3 = lines_to_stroke3(random_lines(rng))
    s5 = stroke3_to_stroke5(s3, len(s3) + 4)
    assert s5.shape == (len(s3) + 4, 5)
    assert (s5.sum(1)[: len(s3)] - s5[: len(s3), :2].sum(1) == 1).all()  # one pen state per row
    assert (s5[len(s3) :] == [0, 0, 0, 0, 1]).all()
    np.testing.assert_array_equal(stroke5_to_stroke3(s5), s3)
    with pytest.raises(DataError, match="max_len"):
        stroke3_to_stroke5(s3, len(s3) - 1)


def test_raw_to_stroke3_rescales_to_255_and_simplifies():
    # a 1000-wide straight stroke with 100 collinear points, and a second stroke
    xs = list(np.linspace(0, 1000, 100))
    drawing = [[xs, [500.0] * 100, list(range(100))], [[0, 0], [0, 250]]]
    s3 = raw_to_stroke3(drawing)
    assert bounding_extent(s3) == pytest.approx(255)
    assert len(s3) == 3  # 2 + 2 points, the origin dropped
    lines = stroke3_to_lines(s3)
    assert [len(line) for line in lines] == [2, 2]


@pytest.mark.parametrize(
    "drawing, message",
    [([], "empty"), ([[[1, 2], [3]]], "pair up"), ([[[], []]], "no points"), ([[["a"], [1]]], "non-numeric"),
     ([[[1.0, float("nan")], [0, 1]]], "NaN")],
)
def test_raw_to_stroke3_bad_drawings(drawing, message):
    with pytest.raises(DataError, match=message):
        raw_to_stroke3(drawing)


@pytest.mark.parametrize(
    "bad, message",
    [(np.zeros((0, 3)), "empty"), (np.zeros((4, 2)), "shape"), (np.array([[1, np.nan, 0]]), "NaN"),
     (np.array([[1, 1, 2]]), "pen state 2"), ("abc", "not a numeric")],
)
def test_check_stroke3_rejects(bad, message):
    with pytest.raises(DataError, match=message):
        check_stroke3(bad)


def test_normalisation_and_unit_box(rng):
    sketches = [lines_to_stroke3(random_lines(rng)) for _ in range(20)]
    scale = offset_scale(sketches)
    normed = normalize(sketches, scale)
    assert np.concatenate([s[:, :2].ravel() for s in normed]).std() == pytest.approx(1.0, rel=1e-4)
    assert all((a[:, 2] == b[:, 2]).all() for a, b in zip(sketches, normed))
    boxed = fit_unit_box(sketches[0] * np.array([7, 7, 1], np.float32))
    assert bounding_extent(boxed) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(boxed, fit_unit_box(sketches[0]), atol=1e-5)  # scale-free


def test_limit_length_and_pad_batch():
    a = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    b = np.array([[1, 0, 0]] * 5 + [[0, 1, 1]], np.float32)
    kept, idx = limit_length([a, b], 3)
    assert idx.tolist() == [0] and len(kept) == 1
    kept, idx = limit_length([a, b], 3, mode="truncate")
    assert idx.tolist() == [0, 1] and len(kept[1]) == 3 and kept[1][-1, 2] == 1
    with pytest.raises(DataError, match="mode"):
        limit_length([a], 3, mode="cut")
    batch, lengths = pad_batch([a, b])
    assert batch.shape == (2, 7, 5) and lengths.tolist() == [2, 6]
    mask = np.arange(7) < lengths[:, None]
    assert (batch[~mask][:, 4] == 1).all() and (batch[mask][:, 4] == 0).all()
    x, lens = collate_strokes([a, b])
    assert tuple(x.shape) == (2, 7, 5) and lens.tolist() == [2, 6]

import json
import struct

import numpy as np
import pytest

from facespace.data.sketch_formats import Sketches, load_sketches, read_bin, read_ndjson, read_npz, write_npz
from facespace.data.strokes import lines_to_stroke3, stroke3_to_lines
from facespace.errors import DataError
from tests.conftest import SKETCHRNN, needs_sketchrnn

SQUARE = [[[10, 100, 100, 10, 10], [10, 10, 100, 100, 10]], [[40, 60], [50, 50]]]


def record(drawing, **fields):
    base = {"word": "face", "countrycode": "NZ", "timestamp": "2017-03-01 00:00:00.0", "recognized": True,
            "key_id": "5001", "drawing": drawing}
    return json.dumps({**base, **fields})


def expected(drawing):
    return lines_to_stroke3([np.array(s[:2], np.float32).T for s in drawing])


def write_bin(path, drawings, truncate=0):
    """QuickDraw's binary layout: <Q key_id, 2s country, b recognized, I timestamp, H n_strokes, strokes."""
    data = b""
    for k, drawing in enumerate(drawings):
        data += struct.pack("<Q2sbIH", 1000 + k, b"NZ", 1, 123, len(drawing))
        for xs, ys in drawing:
            data += struct.pack("<H", len(xs)) + bytes(xs) + bytes(ys)
    path.write_bytes(data[: len(data) - truncate])
    return path


def test_ndjson_simplified_known_answer(tmp_path):
    path = tmp_path / "face.ndjson"
    path.write_text(record(SQUARE) + "\n" + record(SQUARE, recognized=False, key_id="7") + "\n")
    sk = read_ndjson(path)
    assert len(sk) == 2 and sk.skipped == 0
    np.testing.assert_array_equal(sk.strokes[0], expected(SQUARE))
    assert sk.labels["word"].tolist() == ["face", "face"]
    assert sk.labels["recognized"].tolist() == [True, False]
    assert len(read_ndjson(path, recognized_only=True)) == 1


def test_ndjson_raw_is_rescaled_and_simplified(tmp_path):
    xs = np.linspace(0, 1000, 50).tolist()
    raw = [[xs, [0.0] * 50, list(range(50))], [[500, 500], [0, 400], [60, 61]]]
    path = tmp_path / "raw.ndjson"
    path.write_text(record(raw) + "\n")
    s = read_ndjson(path).strokes[0]
    lines = stroke3_to_lines(s)
    assert [len(line) for line in lines] == [2, 2]  # 50 collinear points -> 2
    assert np.ptp(np.vstack(lines), axis=0).max() == 255


def test_ndjson_malformed_lines_counted_and_strict_names_line(tmp_path):
    path = tmp_path / "bad.ndjson"
    lines = [record(SQUARE), "{not json", record([]), record([[[0, 300], [0, 0]]]), json.dumps({"word": "x"}), record(SQUARE)]
    path.write_text("\n".join(lines) + "\n")
    sk = read_ndjson(path)
    assert len(sk) == 2 and sk.skipped == 4
    with pytest.raises(DataError, match=r"line 2: malformed JSON"):
        read_ndjson(path, strict=True)
    path.write_text(record(SQUARE) + "\n" + record([]) + "\n")
    with pytest.raises(DataError, match=r"line 2: empty drawing"):
        read_ndjson(path, strict=True)
    path.write_text(record([[[0, 300], [0, 0]]]) + "\n")
    with pytest.raises(DataError, match=r"line 1: .*outside 0..255.*format='raw'"):
        read_ndjson(path, strict=True)
    assert len(read_ndjson(path, fmt="raw")) == 1


def test_bin_round_trip_and_truncation(tmp_path):
    drawings = [[[[10, 100, 100], [10, 10, 100]]], SQUARE]
    sk = read_bin(write_bin(tmp_path / "f.bin", drawings))
    assert len(sk) == 2 and sk.skipped == 0 and sk.labels["key_id"].tolist() == ["1000", "1001"]
    np.testing.assert_array_equal(sk.strokes[1], expected(SQUARE))
    path = write_bin(tmp_path / "t.bin", drawings, truncate=3)
    sk = read_bin(path)
    assert len(sk) == 1 and sk.skipped == 1
    with pytest.raises(DataError, match=r"record 2 .*truncated"):
        read_bin(path, strict=True)


def test_npz_round_trip_with_labels(tmp_path, rng):
    strokes = [lines_to_stroke3([rng.normal(0, 9, (5, 2))]) for _ in range(4)]
    sk = Sketches(strokes, {"mouth": np.array([0, 1, 2, 1])}, {"mouth": ["a", "b", "c"]})
    path = write_npz(tmp_path / "s.npz", {"train": sk, "test": sk.subset([2, 3])})
    back = read_npz(path, split="test")
    assert len(back) == 2 and back.labels["mouth"].tolist() == [2, 1] and back.label_names["mouth"] == ["a", "b", "c"]
    np.testing.assert_array_equal(back.strokes[0], strokes[2])
    assert len(load_sketches(path, limit=3)) == 3


def test_npz_errors(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros(3))
    with pytest.raises(DataError, match=r"no 'train' array \(keys: images\)"):
        read_npz(path)
    items = np.empty(1, object)
    items[0] = np.array([[1, 2, 5]], np.int16)
    np.savez(path, train=items)
    with pytest.raises(DataError, match="sketch 0 has pen state 5"):
        read_npz(path)
    items[0] = np.zeros((0, 3), np.int16)
    np.savez(path, train=items)
    with pytest.raises(DataError, match="empty drawing"):
        read_npz(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        read_npz(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="unknown split"):
        read_npz(path, split="dev")


def test_load_sketches_dispatch_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_sketches(tmp_path / "none.npz")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="unknown sketch file type"):
        load_sketches(tmp_path / "a.txt")


@needs_sketchrnn
def test_real_sheep_file():
    sk = load_sketches(SKETCHRNN / "aaron_sheep.npz", split="test")
    assert len(sk) == 300
    assert all(s.dtype == np.float32 and s.shape[1] == 3 and set(np.unique(s[:, 2])) <= {0, 1} for s in sk.strokes)

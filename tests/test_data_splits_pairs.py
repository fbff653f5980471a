"""Splits (random, by person) and LFW pair lists (synthetic files, and the real ones when present)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LFW, needs_lfw

from facespace.data import FaceSet, Pair, pair_paths, people_split, random_split, read_pair_files, read_pairs
from facespace.errors import DataError


def _set(counts: dict[str, int]) -> FaceSet:
    names = np.array([n for n, k in counts.items() for _ in range(k)])
    n = len(names)
    return FaceSet(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), names, np.array([f"{i}.jpg" for i in range(n)]))


def test_random_split_counts_and_seed():
    faces = _set({f"p{i}": 1 for i in range(13_143)})
    train, test = random_split(faces, test=0.1, seed=42)
    assert (len(train), len(test)) == (11_828, 1_315)  # the course's figures for 13,143 images
    full = _set({f"p{i}": 1 for i in range(13_233)})
    assert tuple(map(len, random_split(full))) == (11_909, 1_324)  # what all of lfw-deepfunneled gives
    ids = np.concatenate([train.images.ravel(), test.images.ravel()])
    assert sorted(ids) == list(range(13_143))  # a partition
    again = random_split(faces, test=0.1, seed=42)[1]
    other = random_split(faces, test=0.1, seed=7)[1]
    assert np.array_equal(test.paths, again.paths) and not np.array_equal(test.paths, other.paths)
    assert len(random_split(faces, test=100)[1]) == 100
    for bad in (0.0, 1.0, 0, 13_143, "0.1"):
        with pytest.raises(DataError, match="test"):
            random_split(faces, test=bad)


def test_people_split_keeps_people_apart():
    rng = np.random.default_rng(0)
    faces = _set({f"p{i}": int(k) for i, k in enumerate(rng.integers(1, 12, 300))})
    train, test = people_split(faces, test=0.2, seed=1)
    assert not set(train.names) & set(test.names)
    assert len(train) + len(test) == len(faces)
    assert 0.2 <= len(test) / len(faces) < 0.2 + 11 / len(faces)  # reaches the target, by whole people
    assert np.array_equal(people_split(faces, test=0.2, seed=1)[1].paths, test.paths)
    with pytest.raises(DataError, match="no names.*random_split"):
        people_split(FaceSet(faces.images, None, faces.paths))
    with pytest.raises(DataError, match="at least two people"):
        people_split(_set({"solo": 10}))


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_view2_and_view1(tmp_path):
    lines = ["2\t2"]
    for fold in range(2):
        lines += [f"A{fold}\t1\t2", f"B{fold}\t3\t4", f"A{fold}\t1\tC{fold}\t2", f"B{fold}\t5\tD{fold}\t6"]
    pairs = read_pairs(_write(tmp_path / "pairs.txt", lines))
    assert len(pairs) == 8 and [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert pairs[0] == Pair(0, "A0", 1, "A0", 2, True)
    assert pairs[6] == Pair(1, "A1", 1, "C1", 2, False)
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    view1 = read_pairs(_write(tmp_path / "dev.txt", ["1", "X\t1\t2", "X\t1\tY\t1"]))
    assert view1 == [Pair(0, "X", 1, "X", 2, True), Pair(0, "X", 1, "Y", 1, False)]
    a, b = pair_paths(view1, tmp_path / "lfw")[1]
    assert a == tmp_path / "lfw" / "X" / "X_0001.jpg" and b == tmp_path / "lfw" / "Y" / "Y_0001.jpg"


def test_several_pair_files_read_as_one_with_folds_after_each_other(tmp_path):
    view2 = _write(tmp_path / "pairs.txt", ["2\t1", "A\t1\t2", "A\t1\tB\t1", "C\t1\t2", "C\t1\tD\t1"])
    dev = _write(tmp_path / "dev.txt", ["1", "X\t1\t2", "X\t1\tY\t1"])
    both = read_pair_files([view2, dev])
    assert [p.fold for p in both] == [0, 0, 1, 1, 2, 2]  # dev's one fold comes after pairs.txt's two
    assert both[4] == Pair(2, "X", 1, "X", 2, True) and both[:4] == read_pairs(view2)
    assert read_pair_files(dev) == read_pairs(dev) == read_pair_files([dev])
    with pytest.raises(DataError, match="no pairs file given"):
        read_pair_files([])
    with pytest.raises(DataError, match="missing.txt"):
        read_pair_files([dev, tmp_path / "missing.txt"])


def test_malformed_pairs_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"bad\.txt:3: malformed line.*matched"):
        read_pairs(_write(tmp_path / "bad.txt", ["2", "X\t1\t2", "X\t1\tY", "X\t1\tY\t2", "X\t1\tY\t2"]))
    with pytest.raises(DataError, match=r"neg\.txt:4: malformed line.*mismatched"):
        read_pairs(_write(tmp_path / "neg.txt", ["1", "", "X\t1\t2", "X\t0\tY\t2"]))
    with pytest.raises(DataError, match=r"short\.txt: the header '10\\t300' promises 6000 pairs"):
        read_pairs(_write(tmp_path / "short.txt", ["10\t300", "X\t1\t2"]))
    with pytest.raises(DataError, match=r"hdr\.txt:1: bad header"):
        read_pairs(_write(tmp_path / "hdr.txt", ["ten", "X\t1\t2"]))
    with pytest.raises(DataError, match="missing.txt: no such pairs file"):
        read_pairs(tmp_path / "missing.txt")


@needs_lfw
def test_real_lfw_pairs():
    pairs = read_pairs(LFW.parent / "pairs.txt")
    assert len(pairs) == 6000 and sorted({p.fold for p in pairs}) == list(range(10))
    assert sum(p.same for p in pairs) == 3000
    fold_of: dict[str, int] = {}
    for p in pairs:
        for name in (p.name_a, p.name_b):
            assert fold_of.setdefault(name, p.fold) == p.fold, f"{name} is in two folds"
    assert all(a.is_file() and b.is_file() for a, b in pair_paths(pairs, LFW))
    for view1, n in (("pairsDevTrain.txt", 2200), ("pairsDevTest.txt", 1000)):
        dev = read_pairs(LFW.parent / view1)
        assert len(dev) == n and {p.fold for p in dev} == {0} and sum(p.same for p in dev) == n // 2
        assert all(a.is_file() and b.is_file() for a, b in pair_paths(dev, LFW))

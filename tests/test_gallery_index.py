"""The index beside a gallery: the same answers as the full scan through enrol, remove, reject and
replace; a missing, stale, foreign or damaged index file rebuilt or caught up; a crash between the
SQLite commit and the index write; two writers (the sampled calibration: test_gallery_sampled.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from facespace.people.gallery import gallery_index, shortlist
from facespace.people.gallery.gallery import Gallery

from gallery_helpers import (CodeEncoder, assert_same, change, enrol, full_scan, people_codes,  # noqa: E402
                             probes_for, saved_gallery)


@pytest.mark.parametrize("scoring,metric", [("nearest", "cosine"), ("centroid", "cosine"), ("nearest", "l2"),
                                            ("centroid", "l2")])
def test_answers_equal_the_full_scan_through_every_change(tmp_path, monkeypatch, scoring, metric):
    monkeypatch.setattr(shortlist, "FIRST_K", 4)  # shortlists that must grow, and some that never close
    monkeypatch.setattr(shortlist, "MAX_K", 64)
    rng = np.random.default_rng(1)
    g = Gallery(tmp_path / "g.db", CodeEncoder(), scoring=scoring, metric=metric)
    faces = people_codes(rng, 60, 4)
    enrol(g, faces[:40])
    for step in range(6):
        change(g, faces, step, split=40, first=0, own_threshold=0.01)
        probes = probes_for(g, rng)
        if step == 3:
            probes[:2] = g.rejections()[0] + 1e-4
        for k in (1, 5):
            assert_same(g.identify_codes(probes, k=k), full_scan(g, probes, k=k))
        assert_same(g.identify_codes(probes, max_distance=0.3), full_scan(g, probes, max_distance=0.3))
    assert g.gallery_index().rebuilt == 1  # built once, then only caught up


def test_a_missing_stale_foreign_or_damaged_index_file_is_never_trusted(tmp_path):
    rng = np.random.default_rng(2)
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    faces = people_codes(rng, 30, 3)
    enrol(g, faces[:20])
    probes = probes_for(g, rng)
    g.identify_codes(probes)
    snapshot = tmp_path / "g.db.index"
    assert snapshot.exists()
    shutil.copy(snapshot, tmp_path / "old.index")
    enrol(g, faces[20:], first=20)
    g.remove("p1")

    def fresh():  # as another process opens it: nothing held in memory
        gallery_index.forget_held()
        return Gallery(tmp_path / "g.db", CodeEncoder())

    g2 = fresh()  # a stale snapshot: caught up from the change log, not rebuilt
    assert_same(g2.identify_codes(probes), full_scan(g2, probes))
    assert g2.gallery_index().rebuilt == 0 and len(g2.gallery_index().index) == len(g2.codes()[0])
    snapshot.unlink()  # deleted: rebuilt from the rows
    g3 = fresh()
    assert_same(g3.identify_codes(probes), full_scan(g3, probes))
    assert g3.gallery_index().rebuilt == 1 and snapshot.exists()
    snapshot.write_bytes(snapshot.read_bytes()[:200])  # truncated: rebuilt, with a warning
    with pytest.warns(UserWarning, match="unreadable"):
        assert_same(fresh().identify_codes(probes), full_scan(g3, probes))
    other = Gallery(tmp_path / "other.db", CodeEncoder())  # another gallery's index: rebuilt
    enrol(other, faces[:5])
    other.identify_codes(probes)
    shutil.copy(tmp_path / "other.db.index", snapshot)
    g4 = fresh()
    assert_same(g4.identify_codes(probes), full_scan(g4, probes))
    assert g4.gallery_index().rebuilt == 1
    # the rows changed behind the log's back (triggers dropped by hand): the checksum catches it
    g4.db.execute("DROP TRIGGER face_log_delete")
    g4.db.execute("DELETE FROM faces WHERE id IN (SELECT id FROM faces LIMIT 3)")
    g5 = fresh()
    assert_same(g5.identify_codes(probes), full_scan(g5, probes))
    assert g5.gallery_index().rebuilt == 1


def test_a_restored_backup_with_a_new_history_is_rebuilt(tmp_path):
    rng = np.random.default_rng(3)
    faces = people_codes(rng, 20, 3)
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, faces[:10])
    g.close()
    shutil.copy(tmp_path / "g.db", tmp_path / "backup.db")
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, faces[10:12], first=10)
    probes = probes_for(g, rng)
    g.identify_codes(probes)  # snapshot at generation 36
    g.close()
    shutil.copy(tmp_path / "backup.db", tmp_path / "g.db")  # back to generation 30 ...
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, faces[12:14], first=12)  # ... and on to 36 with other faces
    assert_same(g.identify_codes(probes), full_scan(g, probes))
    assert g.gallery_index().rebuilt == 1


def test_one_process_loads_a_gallery_index_once_and_never_for_another_file(tmp_path):
    rng = np.random.default_rng(9)
    faces = people_codes(rng, 20, 3)
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, faces[:10])
    probes = probes_for(g, rng)
    g.identify_codes(probes)
    with Gallery(tmp_path / "g.db", CodeEncoder()) as again:  # a server opening the gallery per request
        assert_same(again.identify_codes(probes), full_scan(again, probes))
        assert again.gallery_index().index is g.gallery_index().index and again.gallery_index().rebuilt == 0
    g.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"g.db{suffix}").unlink(missing_ok=True)
    other = Gallery(tmp_path / "g.db", CodeEncoder())  # another gallery at the same path
    enrol(other, faces[10:], first=10)
    assert_same(other.identify_codes(probes), full_scan(other, probes))
    assert other.gallery_index().rebuilt == 1


def test_a_crash_between_the_commit_and_the_index_write_loses_nothing(tmp_path):
    g, faces, probes = saved_gallery(tmp_path, 4)
    g.close()
    # another process enrols and removes, then dies as it starts writing the index (the snapshot
    # is rewritten after every change here), and once more halfway through the write
    script = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r}); sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from gallery_helpers import CodeEncoder, enrol
        from facespace.people.gallery import gallery_index
        from facespace.people.gallery.gallery import Gallery
        from facespace.index import Index
        gallery_index.SNAPSHOT_MIN_TAIL = 0
        faces = np.load({str(tmp_path / 'faces.npy')!r})
        g = Gallery({str(tmp_path / 'g.db')!r}, CodeEncoder())
        g.identify_codes(faces[0, :1, 0, 0])
        first = 20 if sys.argv[1] == "before" else 25
        enrol(g, faces[first : first + 5], first=first)
        g.remove(f"p{{first - 18}}")
        if sys.argv[1] == "before":
            Index.save = lambda self, path: os._exit(9)
        else:
            def half(self, path):
                open(path, "wb").write(b"partial index bytes")
                os._exit(9)
            Index.save = half
        g.identify_codes(faces[0, :1, 0, 0])
    """)
    for when in ("before", "halfway"):
        done = subprocess.run([sys.executable, "-c", script, when], capture_output=True, text=True)
        assert done.returncode == 9, done.stderr
        gallery_index.forget_held()
        g = Gallery(tmp_path / "g.db", CodeEncoder())
        first = 20 if when == "before" else 25
        assert f"p{first + 1}" in dict(g.list()) and f"p{first - 18}" not in dict(g.list())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the half-written file is rebuilt, with a warning
            assert_same(g.identify_codes(probes), full_scan(g, probes))
        g.close()


def test_two_writers_each_see_the_other(tmp_path):
    rng = np.random.default_rng(5)
    faces = people_codes(rng, 40, 3)
    a = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(a, faces[:10])
    b = Gallery(tmp_path / "g.db", CodeEncoder())
    probes = probes_for(a, rng)
    assert_same(b.identify_codes(probes), full_scan(b, probes))
    enrol(a, faces[10:20], first=10)
    b.remove("p4")
    enrol(b, faces[20:25], first=20)
    a.reject(faces[7][0, 0, 0], "p7")
    for g in (a, b):
        probes = probes_for(g, rng)
        assert_same(g.identify_codes(probes), full_scan(g, probes))
    # two processes enrolling at once, then both answers right
    np.save(tmp_path / "faces.npy", faces)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from gallery_helpers import CodeEncoder
        from facespace.people.gallery.gallery import Gallery
        faces = np.load({str(tmp_path / 'faces.npy')!r})
        g = Gallery({str(tmp_path / 'g.db')!r}, CodeEncoder())
        first = int(sys.argv[1])
        for i in range(first, first + 5):
            g.enroll(f"q{{i}}", faces[i], force=True)
            g.identify_codes(faces[i][:1, 0, 0])
    """)
    runs = [subprocess.Popen([sys.executable, "-c", script, str(first)], stderr=subprocess.PIPE, text=True)
            for first in (25, 30)]
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    for g in (a, b):
        assert {f"q{i}" for i in range(25, 35)} <= set(dict(g.list()))
        probes = probes_for(g, rng)
        assert_same(g.identify_codes(probes), full_scan(g, probes))


def test_an_hnsw_index_names_nearly_every_probe_as_the_scan(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery_index, "EXACT_MAX_ITEMS", 200)
    rng = np.random.default_rng(6)
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    faces = people_codes(rng, 100, 5, spread=0.3)
    enrol(g, faces[:30])
    g.identify_codes(probes_for(g, rng))
    assert g.gallery_index().index.backend == "exact"
    enrol(g, faces[30:], first=30)  # caught up past 1.5 x the exact index's size: rebuilt as a graph
    probes = probes_for(g, rng, 100)
    found, expected = g.identify_codes(probes), full_scan(g, probes)
    assert g.gallery_index().index.backend == "hnsw" and g.gallery_index().rebuilt == 2
    assert np.mean([a.name == b.name for a, b in zip(found, expected)]) >= 0.95


def test_threads_of_one_process_share_the_index_safely(tmp_path):
    import threading

    rng = np.random.default_rng(10)
    faces = people_codes(rng, 40, 3)
    probes = rng.normal(size=(20, 16)).astype(np.float32)
    with Gallery(tmp_path / "g.db", CodeEncoder()) as g:
        enrol(g, faces[:10])
    errors = []

    def writer():
        try:
            with Gallery(tmp_path / "g.db", CodeEncoder()) as g:
                for i in range(10, 40):
                    g.enroll(f"p{i}", faces[i], force=True)
                    if i % 5 == 0:
                        g.remove(f"p{i - 8}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader():
        try:
            with Gallery(tmp_path / "g.db", CodeEncoder()) as g:
                for _ in range(30):
                    g.identify_codes(probes)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    with Gallery(tmp_path / "g.db", CodeEncoder()) as g:
        assert_same(g.identify_codes(probes), full_scan(g, probes))


def test_an_index_of_the_users_at_the_snapshots_path_is_never_written_over(tmp_path):
    from facespace.index import Index

    rng = np.random.default_rng(11)
    mine = Index(16)
    mine.add(rng.normal(size=(5, 16)))
    mine.save(tmp_path / "g.db.index")
    before = (tmp_path / "g.db.index").read_bytes()
    g = Gallery(tmp_path / "g.db", CodeEncoder())
    enrol(g, people_codes(rng, 10, 3))
    probes = probes_for(g, rng)
    with pytest.warns(UserWarning, match="not this gallery's"):
        assert_same(g.identify_codes(probes), full_scan(g, probes))
    assert (tmp_path / "g.db.index").read_bytes() == before

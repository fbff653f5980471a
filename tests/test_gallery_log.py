"""The gallery's change log is pruned once an index snapshot has passed it: it stays bounded through
many changes, an index older than what it still holds (another process's copy, held in memory or
on disk) is rebuilt with the full scan's answers, and a crash between saving the snapshot and
pruning loses nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from facespace.people.gallery import gallery_index, sampled
from facespace.people.gallery.changes import generation, log_start
from facespace.people.gallery.gallery import Gallery
from facespace.people.gallery.matching import calibrate_strangers
from facespace.people.gallery.store import read_rows

from gallery_helpers import (CodeEncoder, assert_same, enrol, full_scan, people_codes, probes_for,  # noqa: E402
                             saved_gallery)


def log_rows(g: Gallery) -> int:
    return int(g.db.execute("SELECT COUNT(*) FROM face_log").fetchone()[0])


def fresh(path) -> Gallery:
    """The gallery as another process opens it: nothing held in memory."""
    gallery_index.forget_held()
    return Gallery(path, CodeEncoder())


@pytest.mark.parametrize("where", ["file", "memory"])
def test_the_log_stays_bounded_through_many_changes(tmp_path, monkeypatch, where):
    monkeypatch.setattr(gallery_index, "SNAPSHOT_MIN_TAIL", 12)
    monkeypatch.setattr(sampled, "FULL_MAX_FACES", 40)  # a sampled calibration reads the log too
    monkeypatch.setattr(sampled, "SAMPLE_FACES", 1000)  # ... at rate one: the full computation's threshold
    rng = np.random.default_rng(20)
    faces = people_codes(rng, 80, 3)
    g = Gallery(tmp_path / "g.db" if where == "file" else ":memory:", CodeEncoder())
    enrol(g, faces[:10])
    most = 0
    for step in range(30):
        enrol(g, faces[10 + 2 * step : 12 + 2 * step], first=10 + 2 * step)
        g.remove(f"p{step}")
        probes = probes_for(g, rng, 10)
        assert_same(g.identify_codes(probes), full_scan(g, probes))
        most = max(most, log_rows(g))
    assert generation(g.db) == 30 + 30 * 9 and log_start(g.db) > 200
    assert most <= 12 + 9 + 1  # the tail a snapshot waits for, one step's changes and the entry it was saved at
    _, person, codes = read_rows(g.db, None, 16)
    t, _, _ = calibrate_strangers(codes, person, metric="cosine", target_far=0.01)
    assert g.threshold == pytest.approx(t, abs=1e-9)
    assert g.gallery_index().rebuilt == 1


def test_an_index_older_than_the_log_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery_index, "SNAPSHOT_MIN_TAIL", 0)  # a snapshot (and pruning) after every change
    rng = np.random.default_rng(21)
    faces = people_codes(rng, 40, 3)
    path = tmp_path / "g.db"
    a = Gallery(path, CodeEncoder())
    enrol(a, faces[:10])
    probes = probes_for(a, rng)
    a.identify_codes(probes)
    shutil.copy(tmp_path / "g.db.index", tmp_path / "old.index")
    old = generation(a.db)
    b = fresh(path)  # another process: changes, saves its snapshot and prunes the log
    enrol(b, faces[10:20], first=10)
    b.remove("p3")
    assert_same(b.identify_codes(probes), full_scan(b, probes))
    assert log_start(b.db) == generation(b.db) > old and log_rows(b) == 1
    # the first process's index, held in memory, is older than the log: the new snapshot is loaded
    assert_same(a.identify_codes(probes), full_scan(a, probes))
    assert a.gallery_index().rebuilt == 1 and a.gallery_index().generation == generation(a.db)  # built once, first
    shutil.copy(tmp_path / "old.index", tmp_path / "g.db.index")  # an older copy of the snapshot: rebuilt
    c = fresh(path)
    assert_same(c.identify_codes(probes), full_scan(c, probes))
    assert c.gallery_index().rebuilt == 1


def test_a_snapshot_of_faces_enrolled_before_the_log_is_rebuilt_once_the_log_is_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery_index, "SNAPSHOT_MIN_TAIL", 0)
    rng = np.random.default_rng(22)
    faces = people_codes(rng, 30, 3)
    path = tmp_path / "g.db"
    g = Gallery(path, CodeEncoder())
    enrol(g, faces[:10])
    for statement in ("DROP TRIGGER face_log_insert", "DROP TRIGGER face_log_delete", "DROP TABLE face_log",
                      "DELETE FROM meta WHERE key = 'gallery_uuid'"):
        g.db.execute(statement)  # a gallery written before the change log existed
    g.close()
    g = fresh(path)
    probes = probes_for(g, rng)
    g.identify_codes(probes)  # a snapshot at generation 0, whose log entry (token) nobody can prune
    assert generation(g.db) == 0
    shutil.copy(tmp_path / "g.db.index", tmp_path / "old.index")
    enrol(g, faces[10:15], first=10)
    g.identify_codes(probes)
    assert log_start(g.db) > 0
    shutil.copy(tmp_path / "old.index", tmp_path / "g.db.index")
    g = fresh(path)
    assert_same(g.identify_codes(probes), full_scan(g, probes))
    assert g.gallery_index().rebuilt == 1


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_crash_between_saving_the_index_and_pruning_loses_nothing(tmp_path, when):
    g, faces, probes = saved_gallery(tmp_path, 23)
    start = log_start(g.db)
    assert start == generation(g.db) > 0  # the first snapshot pruned the log before it
    g.close()
    # another process enrols and removes, saves its snapshot, and dies before pruning, or in the
    # middle of the pruning's transaction
    script = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from gallery_helpers import CodeEncoder, enrol
        from facespace.people.gallery import changes, gallery_index
        from facespace.people.gallery.gallery import Gallery
        gallery_index.SNAPSHOT_MIN_TAIL = 0
        faces = np.load({str(tmp_path / 'faces.npy')!r})
        g = Gallery({str(tmp_path / 'g.db')!r}, CodeEncoder())
        enrol(g, faces[20:25], first=20)
        g.remove("p2")
        def die(db, upto):
            if sys.argv[1] == "during":
                changes.prune_log(db, upto)
            os._exit(9)
        gallery_index.prune_log = die
        g.identify_codes(faces[0, :1, 0, 0])
    """)
    done = subprocess.run([sys.executable, "-c", script, when], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    g = fresh(tmp_path / "g.db")
    assert log_start(g.db) == start and log_rows(g) == generation(g.db) - start + 1  # nothing pruned
    assert "p21" in dict(g.list()) and "p2" not in dict(g.list())
    assert_same(g.identify_codes(probes), full_scan(g, probes))
    assert g.gallery_index().rebuilt == 0  # the snapshot the crashed process saved, caught up

"""Writers at once: two of one index both land (#27.1), processes enrolling into one gallery all land,
and the same images are not added twice to an index (#27.11)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facespace.index import Index


def write_faces(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(folder / f"f{i:03d}.png")
    return folder


@pytest.fixture
def index_and_folders(tmp_path, run_cli):
    base, a, b = (write_faces(tmp_path / n, k, s) for n, k, s in (("base", 30, 0), ("a", 20, 1), ("b", 20, 2)))
    index = tmp_path / "faces.index"
    code, _, err = run_cli("index", "build", base, "--model", "pixels:8", "--crop", "none", "--out", index)
    assert code == 0, err
    return index, a, b


def test_two_concurrent_index_adds_both_land(index_and_folders):
    index, a, b = index_and_folders
    cmd = [sys.executable, "-m", "facespace.cli", "index", "add", str(index), "--model", "pixels:8", "--crop", "none"]
    procs = [subprocess.Popen([*cmd, *map(str, sorted(folder.glob("*.png")))], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for folder in (a, b)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    firsts = sorted(json.loads(o[0])["first_id"] for o in outs)
    assert firsts == [30, 50]  # one after the other: no id handed out twice
    loaded = Index.load(index)
    assert len(loaded) == 70 and sorted(loaded.ids.tolist()) == list(range(70))
    paths = [m["path"] for m in loaded.get_metadata(loaded.ids)]
    assert len(set(paths)) == 70


def test_adding_the_same_images_again_is_refused_or_skipped(index_and_folders, run_cli):
    index, a, _ = index_and_folders
    files = sorted(a.glob("*.png"))
    assert run_cli("index", "add", index, *files, "--model", "pixels:8", "--crop", "none")[0] == 0
    code, _, err = run_cli("index", "add", index, *files[:5], "--model", "pixels:8", "--crop", "none")
    assert code == 2 and "5 of the 5 item(s) are already in" in err and "--skip-existing" in err
    assert len(Index.load(index)) == 50  # nothing was added
    code, out, err = run_cli("index", "add", index, *files, "--model", "pixels:8", "--crop", "none", "--skip-existing")
    assert code == 0 and json.loads(out) == {"added": 0, "first_id": None, "count": 50, "skipped": 20}


def test_processes_enrolling_into_one_gallery_at_once_all_land(tmp_path):
    """N processes enrol different people into one gallery file at once: everyone is there exactly
    once and SQLite's integrity check passes."""
    import sqlite3

    from facespace.models.pixels import PixelEncoder
    from facespace.people.gallery.gallery import Gallery

    script = """
import sys
import numpy as np
from facespace.models.pixels import PixelEncoder
from facespace.people.gallery.gallery import Gallery
k = int(sys.argv[2])
faces = np.random.default_rng(k).random((3, 8, 8, 1), dtype=np.float32)
with Gallery(sys.argv[1], PixelEncoder(size=8, channels=1)) as g:
    print(g.enroll(f"person-{k}", faces, force=True))
"""
    db = tmp_path / "people.db"
    with Gallery(db, PixelEncoder(size=8, channels=1)) as g:
        g.enroll("first", np.random.default_rng(99).random((3, 8, 8, 1), dtype=np.float32), force=True)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(db), str(k)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    with Gallery(db) as g:
        assert dict(g.list()) == {"first": 3, **{f"person-{k}": 3 for k in range(4)}}
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_second_training_into_a_run_folder_in_use_is_refused(tmp_path):
    """One writer per run folder: a second `train` into a folder a running training holds is refused
    at once, and the first goes on."""
    import time

    data = write_faces(tmp_path / "faces", 40, 3)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "facespace.cli", "train", "linear", "--data", str(data), "--size", "16", "--crop",
           "none", "--code-size", "4", "--out", str(run)]
    first = subprocess.Popen([*cmd, "--epochs", "400"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run / "run.lock").exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)
        assert first.poll() is None, first.stderr.read()
        second = subprocess.run([*cmd, "--epochs", "1", "--overwrite"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "being changed by another process" in second.stderr
        assert first.poll() is None  # the first training goes on
    finally:
        first.kill()
        first.wait()

"""SIGKILL at random points of train, index build/add, encode and people enroll leaves the old state or
the new one, never a half (#27): every file facespace writes is written to a temporary name and
renamed, and a gallery change is one SQLite transaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from facespace.index import Index

DELAYS = (0.6, 1.4, 2.6)  # seconds after start: while importing, loading, encoding or writing


def faces(folder, n, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(folder / f"f{i:03d}.png")
    return folder


def killed(args, delay):
    """Run `facespace ARGS`, SIGKILL it after `delay` s unless it finished; True if it was killed."""
    proc = subprocess.Popen([sys.executable, "-m", "facespace.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    assert proc.returncode == 0
    return False


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    return root, faces(root / "base", 60, 0), faces(root / "more", 60, 1)


@pytest.mark.parametrize("delay", DELAYS)
def test_index_build_and_add(world, tmp_path, delay):
    root, base, more = world
    index = tmp_path / "faces.index"
    build = ["index", "build", base, "--model", "pixels:16", "--crop", "none", "--out", index]
    if killed(build, delay):
        assert not index.exists() or len(Index.load(index)) == 60
    if not index.exists():
        assert not killed(build, 600)
    killed(["index", "add", index, *sorted(more.glob("*.png")), "--model", "pixels:16", "--crop", "none"], delay)
    assert len(Index.load(index)) in (60, 120)  # the old index, or the old one with all 60 new faces


@pytest.mark.parametrize("delay", DELAYS)
def test_encode(world, tmp_path, delay):
    from facespace.errors import FacespaceError
    from facespace.pipelines.export.read import load_codes

    _, base, _ = world
    for suffix in (".npy", ".parquet"):
        out = tmp_path / f"codes{suffix}"
        killed(["encode", base, "--model", "pixels:16", "--crop", "none", "--out", out], delay)
        if out.exists():
            try:
                assert len(load_codes(out)) == 60
            except FacespaceError as e:  # killed between the .npy and its sidecar: refused, never misread
                assert suffix == ".npy" and "sidecar" in str(e)


@pytest.mark.parametrize("delay", DELAYS)
def test_people_enroll(world, tmp_path, delay):
    from facespace.people.gallery.gallery import Gallery

    _, base, more = world
    db = tmp_path / "people.db"
    assert not killed(["people", "enroll", "ann", *sorted(base.glob("*.png"))[:5], "--model", "pixels:16", "--crop",
                       "none", "--gallery", db, "--force"], 600)
    killed(["people", "enroll", "bob", *sorted(more.glob("*.png"))[:30], "--model", "pixels:16", "--crop", "none",
            "--gallery", db, "--force"], delay)
    with Gallery(db) as g:
        assert dict(g.list()) in ({"ann": 5}, {"ann": 5, "bob": 30})
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("delay", DELAYS)
def test_train(world, tmp_path, delay):
    from facespace.models.registry import load_model

    _, base, _ = world
    run = tmp_path / "run"
    args = ["train", "linear", "--data", base, "--size", "16", "--crop", "none", "--code-size", "4", "--epochs", "30",
            "--out", run]
    killed(args, delay + 1.0)
    for name in ("best.safetensors", "last.safetensors"):
        if (run / name).exists():
            assert load_model(run / name).kind == "linear"  # a whole checkpoint, never a half-written one
    if (run / "resume.pt").exists():  # an interrupted run continues where it stopped
        assert not killed([*args, "--resume"], 600)
        assert load_model(run / "best.safetensors").kind == "linear"

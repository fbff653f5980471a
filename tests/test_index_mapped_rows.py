"""Many rows of a memory-mapped array (an ivfpq index's re-ranking): read through the mapping a
chunk at a time, equal to plain indexing, and not left in the process's resident set."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from facespace.index import mapped
from facespace.index.mapped import ScratchArrays, take_rows


def test_many_rows_through_the_mapping_equal_indexing(tmp_path, monkeypatch):
    monkeypatch.setattr(mapped, "CHUNK_ROWS", 1000)  # several chunks, the last one short
    scratch = ScratchArrays()
    x = scratch.grow("data", np.zeros((0, 5), np.float32), 0, (20_000, 5))
    x[:] = np.random.default_rng(0).normal(size=(20_000, 5)).astype(np.float32)
    rows = np.random.default_rng(1).integers(0, 20_000, size=(600, 7))  # 4,200 picks, repeats included
    assert len(np.unique(rows)) >= mapped.PREAD_MAX_ROWS  # the mapped path, not pread
    assert np.array_equal(take_rows(x, rows), x[rows]) and take_rows(x, rows).shape == (600, 7, 5)
    few = rows[:10, :3]  # 30 rows: pread
    assert np.array_equal(take_rows(x, few), x[few])
    # a file saved with a header (as an index's arrays are): offsets inside the mapping
    path = tmp_path / "a.bin"
    with open(path, "wb") as f:
        f.write(b"h" * 200)
        f.write(np.asarray(x).tobytes())
    y = np.memmap(path, np.float32, "r", offset=200, shape=(20_000, 5))
    y._rows_fd = os.open(path, os.O_RDONLY)  # as map_file keeps one
    try:
        assert np.array_equal(take_rows(y, rows), np.asarray(x)[rows])
        assert np.array_equal(take_rows(y, few), np.asarray(x)[few])
    finally:
        os.close(y._rows_fd)


SCRIPT = """
import json, sys
import numpy as np
from facespace.index.mapped import map_file, take_rows
def file_mb():
    with open("/proc/self/status") as f:
        return int([l.split()[1] for l in f if l.startswith("RssFile")][0]) / 1024
x = map_file(sys.argv[1], np.float32, "r", (400_000, 32))
rows = np.random.default_rng(0).choice(400_000, 50_000, replace=False)
before = file_mb()
got = take_rows(x, rows) if sys.argv[2] == "take_rows" else np.array(x[rows])
print(json.dumps({"grew_mb": file_mb() - before, "sum": float(got.sum())}))
"""


def test_reading_many_rows_leaves_the_file_out_of_the_resident_set(tmp_path):
    path = tmp_path / "v.f32"
    np.random.default_rng(2).normal(size=(400_000, 32)).astype(np.float32).tofile(path)  # 51 MB

    def run(how):
        p = subprocess.run([sys.executable, "-c", SCRIPT, str(path), how], capture_output=True, text=True, check=True)
        return json.loads(p.stdout)

    plain, ours = run("indexing"), run("take_rows")
    assert ours["sum"] == plain["sum"]
    assert plain["grew_mb"] > 25  # indexing the mapping keeps most of the file resident
    assert ours["grew_mb"] < 10

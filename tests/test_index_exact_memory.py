"""The exact backend's search memory stays about one score buffer, whatever the number of chunks (#26).

A fresh score matrix per (query batch, row chunk) let glibc's heap grow by about one matrix per
chunk (140-200 MB here before the fix, 6-8 MB after). Measured as the growth of VmHWM in a fresh
process, since the buffers are torch's and the pytest process's heap is not a clean slate.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHUNK, BATCH = 2048, 256
BUFFER_MB = CHUNK * BATCH * 4 / 2**20  # one (query_batch, chunk_size) float32 score matrix: 2 MB

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from facespace.index import Index

    def peak_mb():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(fields["VmHWM"].split()[0]) / 1024

    rng = np.random.default_rng(0)
    index = Index(16, sys.argv[1], chunk_size=int(sys.argv[2]), query_batch=int(sys.argv[3]))
    index.add(rng.standard_normal((200_000, 16), dtype=np.float32))  # ~98 chunks per query batch
    index.remove(np.arange(0, 200_000, 97))  # dead rows to mask
    queries = rng.standard_normal((1000, 16), dtype=np.float32)
    index.search(queries[:2], 10)  # torch imported, its threads started
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM back to the current RSS
    before = peak_mb()
    index.search(queries, 10)
    print(peak_mb() - before)
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_search_peak_memory_is_a_few_score_buffers(metric):
    run = subprocess.run([sys.executable, "-c", SCRIPT, metric, str(CHUNK), str(BATCH)],
                         check=False, capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "clear_refs" in run.stderr:
        pytest.skip(f"cannot reset VmHWM here: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stderr
    grown = float(run.stdout.strip().splitlines()[-1])
    # The fix holds it at a few MB; the bound leaves room for allocator noise and still sits far
    # below the ~98 buffers (~200 MB) a fresh matrix per chunk could pin.
    assert grown <= 16 * BUFFER_MB, f"searching grew peak memory by {grown:.0f} MB (one score buffer is {BUFFER_MB:.0f} MB)"

"""A cluster worker's allocator: Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes
glibc map and unmap every large block afresh; `roomy_malloc` lets the worker reuse freed memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, resource, sys
import numpy as np
from facespace.allocator import roomy_malloc
changed = roomy_malloc() if sys.argv[1] == "roomy" else None
for _ in range(3):  # warm up: the first blocks fault in either way
    np.ones(1 << 18)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):  # 2 MiB allocated, written and freed 50 times
    np.ones(1 << 18)
print(json.dumps({"changed": changed, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def faults(mode: str) -> dict:
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # as Dask's nanny starts a worker
    p = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_worker_reuses_freed_memory_instead_of_faulting_it_in_again():
    dask_like, roomy = faults("dask"), faults("roomy")
    assert roomy["changed"] is True
    # 50 x 2 MiB = 25,600 pages: under Dask's setting each block is a fresh mapping (faulted in again),
    # with roomy_malloc the same memory is reused
    assert dask_like["faults"] > 10_000
    assert roomy["faults"] < dask_like["faults"] / 20

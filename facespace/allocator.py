"""The process's memory allocator, set up for torch on a CPU: freed blocks are kept for reuse.

glibc serves a block over its mmap threshold (128 KiB at first) with a fresh mapping and hands it
back when freed; it raises that threshold as large blocks come and go, unless a threshold was set
by hand. Dask's nanny starts every worker with `MALLOC_TRIM_THRESHOLD_=65536`, which both trims at
64 KiB and freezes the mmap threshold, so torch's batch tensors fault their pages in again on every
batch. `roomy_malloc` raises both thresholds; the command line (`facespace.cli.main`) and each
cluster worker (`facespace.pipelines.export.cluster`) call it once. Measured with faces-ae encoding
1,000 LFW photos: one thread 60.1 s under Dask's setting (32 s of it in the kernel), 39.4 s under
glibc's defaults, 29.4 s with these thresholds (0.2 s in the kernel); two threads 16.4-17.8 s with
glibc's defaults, 13.6 s with these.

May import: nothing of facespace (the ground floor).
"""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters, and the values `roomy_malloc` gives them
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_BYTES, MMAP_BYTES = 256 << 20, 32 << 20


def roomy_malloc() -> bool:
    """Let this process keep freed memory for reuse: glibc's trim threshold 256 MiB, mmap threshold
    32 MiB (see the module docstring). Returns False where the C library is not glibc (nothing changed)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))

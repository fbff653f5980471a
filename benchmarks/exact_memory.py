"""Resident memory of the exact backend while it searches (issue #26).

Builds an exact index of random float32 vectors, saves it, loads it in this process, then answers
the same queries twice and reports VmRSS after loading, after each pass, and the peak (VmHWM, reset
after loading through /proc/self/clear_refs), plus queries/s. With --save-results the answers are
written to an .npz so two versions of the code can be compared row for row.

    .venv/bin/python benchmarks/exact_memory.py --n 1000000 --metric l2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facespace.index import Index


def memory_mb() -> dict[str, int]:
    """VmRSS and VmHWM of this process, MB."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {key: round(int(fields[key].split()[0]) / 1024) for key in ("VmRSS", "VmHWM")}


def reset_peak() -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--metric", default="l2")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--remove", type=int, default=0, help="ids removed before saving (dead rows to mask)")
    parser.add_argument("--save-results", default="", help="write distances and ids to this .npz")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exact.fsi"
        index = Index(args.dim, args.metric)
        index.add(rng.standard_normal((args.n, args.dim), dtype=np.float32))
        if args.remove:
            index.remove(rng.choice(args.n, args.remove, replace=False))
        index.save(path)
        del index
        index = Index.load(path)
    reset_peak()
    report = {"n": args.n, "dim": args.dim, "metric": args.metric, "threads": torch.get_num_threads(),
              "after_load": memory_mb()}
    for name in ("pass1", "pass2"):
        t = time.perf_counter()
        dist, ids = index.search(queries, args.k)
        report[name] = {"qps": round(args.queries / (time.perf_counter() - t), 1), **memory_mb()}
    report["load"] = [round(x, 2) for x in os.getloadavg()]
    if args.save_results:
        np.savez(args.save_results, dist=dist, ids=ids)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

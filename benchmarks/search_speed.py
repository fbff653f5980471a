"""Search speed of the index backends beside faiss and hnswlib, on random and on real vectors.

For each vector set (1,000,000 x 32 random float32, and PCA codes of all LFW faces), 1,000
queries, k = 10, l2 metric, it measures for facespace's exact / LSH / HNSW backends and for faiss
`IndexFlatL2`, faiss `IndexHNSWFlat` and raw hnswlib: build time, queries/s on 1 thread and on all
threads, recall@10 against exact search, and the growth of the process's resident memory while
building. Writes benchmarks/results/search_speed.{json,md}.

    .venv/bin/python benchmarks/search_speed.py            # the full run (< 10 min on 2 quiet cores)
    .venv/bin/python benchmarks/search_speed.py --n 100000 --no-lfw   # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LFW = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
K = 10


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def set_threads(n: int) -> None:
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(a[a >= 0], b)) for a, b in zip(found, truth)]
    return float(np.sum(hits) / truth.size)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_set(name: str, x: np.ndarray, q: np.ndarray, all_threads: int, log, lsh_configs, on_row=None) -> list[dict]:
    """Every method on one vector set. Returns one row per (method, search setting).

    `lsh_configs`: (n_tables, n_bits, bucket_width or None for the automatic width) to try.
    """
    import faiss
    import hnswlib

    from facespace.index import Index

    rows: list[dict] = []
    truth = None

    def record(method, params, build_s, mem, search, note=""):
        nonlocal truth
        result = {}
        for threads in (1, all_threads):
            set_threads(threads)
            ids, secs = timed(lambda: search(threads))
            result[threads] = (ids, len(q) / secs)
        ids = result[1][0]
        if truth is None:
            truth = ids
        row = {
            "set": name, "method": method, "params": params, "build_s": round(build_s, 2), "memory_mb": round(mem),
            "qps_1": round(result[1][1], 1), "qps_all": round(result[all_threads][1], 1),
            "recall@10": round(recall(ids, truth), 4), "note": note,
        }  # fmt: skip
        rows.append(row)
        if on_row is not None:
            on_row(row)
        log(f"  {method:22s} {params:34s} build {row['build_s']:7.1f}s  mem {row['memory_mb']:5d} MB  "
            f"q/s {row['qps_1']:9.1f} (1) {row['qps_all']:9.1f} ({all_threads})  recall {row['recall@10']:.4f}")
        return row

    def build(fn, threads=all_threads):
        set_threads(threads)
        gc.collect()
        before = rss_mb()
        obj, secs = timed(fn)
        return obj, secs, rss_mb() - before

    # faiss Flat first: its results are the ground truth for every recall
    flat, b, m = build(lambda: (lambda f: (f.add(x), f)[1])(faiss.IndexFlatL2(x.shape[1])))
    record("faiss IndexFlatL2", "", b, m, lambda t: flat.search(q, K)[1], "reference, ground truth")
    del flat

    ours, b, m = build(lambda: (lambda i: (i.add(x), i)[1])(Index(x.shape[1], "l2", "exact")))
    record("facespace exact", "chunk 16384, batch 256", b, m, lambda t: ours.search(q, K)[1])
    del ours

    graph, b, m = build(lambda: (lambda i: (i.add(x), i)[1])(Index(x.shape[1], "l2", "hnsw", M=16, ef_construction=80)))
    for ef in (16, 32, 64, 128, 256):
        graph.configure(ef_search=ef)
        record("facespace hnsw", f"M 16, efC 80, ef {ef}", b, m,
               lambda t: graph.configure(threads=t).search(q, K)[1], "hnswlib inside")  # fmt: skip
    raw = graph._impl._graph  # the same hnswlib graph, queried directly: the wrapper's overhead
    for ef in (32, 128):
        raw.set_ef(ef)
        record("hnswlib (raw)", f"same graph, ef {ef}", 0.0, 0, lambda t: raw.knn_query(q, K, num_threads=t)[0].astype(np.int64),
               "build = facespace hnsw")  # fmt: skip
    del graph, raw

    fh, b, m = build(lambda: (lambda f: (setattr(f.hnsw, "efConstruction", 80), f.add(x), f)[2])(faiss.IndexHNSWFlat(x.shape[1], 16)))
    for ef in (32, 128):
        fh.hnsw.efSearch = ef
        record("faiss IndexHNSWFlat", f"M 16, efC 80, ef {ef}", b, m, lambda t: fh.search(q, K)[1])
    del fh

    # LSH: p-stable hashing for l2; the recall/speed knob is n_probes (and tables, bits, width)
    for tables, bits, width in lsh_configs:
        lsh, b, m = build(lambda: (lambda i: (i.add(x), i)[1])(
            Index(x.shape[1], "l2", "lsh", n_tables=tables, n_bits=bits, bucket_width=width)))
        w = lsh.settings["bucket_width"]
        for probes in (0, 8):
            lsh.configure(n_probes=probes)
            record("facespace lsh", f"T {tables}, bits {bits}, probes {probes}, w {w:.2g}", b, m, lambda t: lsh.search(q, K)[1])
        del lsh
    _ = hnswlib  # imported up front so a missing library fails before the long builds
    return rows


def lfw_codes(model_path: str | None, n_queries: int, log) -> tuple[np.ndarray, np.ndarray, str]:
    """PCA codes (32) of all LFW faces at 32x32: gallery and held-out queries."""
    from facespace.data import load_faces

    faces = load_faces(LFW, size=32, progress=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(faces))
    qi, gi = order[:n_queries], order[n_queries:]
    if model_path:
        from facespace.checkpoint import load_model
        from facespace.codes import encode

        model = load_model(model_path)
        codes, how = encode(model, faces.images), f"codes of {model_path}"
    else:
        from sklearn.decomposition import PCA

        flat = faces.images.reshape(len(faces), -1)
        pca = PCA(32, svd_solver="randomized", random_state=0).fit(flat[gi])
        codes, how = pca.transform(flat).astype(np.float32), "scikit-learn PCA(32) of 32x32 RGB pixels, fitted on the gallery"
    log(f"LFW: {len(faces)} faces, {how}")
    return np.ascontiguousarray(codes[gi]), np.ascontiguousarray(codes[qi]), how


def table(rows: list[dict]) -> str:
    head = "| set | method | params | build s | memory MB | q/s 1 thread | q/s all | recall@10 | note |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['set']} | {r['method']} | {r['params']} | {r['build_s']} | {r['memory_mb']} | "
                     f"{r['qps_1']} | {r['qps_all']} | {r['recall@10']} | {r['note']} |")  # fmt: skip
    return "\n".join(lines)


def ratios(rows: list[dict], name: str) -> list[str]:
    pick = {(r["method"], r["params"]): r for r in rows if r["set"] == name}
    flat = next((r for r in pick.values() if r["method"] == "faiss IndexFlatL2"), None)
    exact = next((r for r in pick.values() if r["method"] == "facespace exact"), None)
    if flat is None or exact is None:
        return []
    out = [f"- {name}: facespace exact / faiss Flat q/s = {exact['qps_1'] / flat['qps_1']:.2f}x (1 thread), "
           f"{exact['qps_all'] / flat['qps_all']:.2f}x (all threads)"]  # fmt: skip
    for r in pick.values():
        if r["method"] == "facespace hnsw":
            out.append(f"- {name}: facespace hnsw {r['params']}: recall {r['recall@10']}, "
                       f"{r['qps_1'] / exact['qps_1']:.1f}x exact's q/s (1 thread), {r['qps_all'] / exact['qps_all']:.1f}x (all)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="random vectors")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-lfw", action="store_true", help="skip the LFW codes set")
    parser.add_argument("--model", help="a checkpoint whose codes make the LFW set (default: scikit-learn PCA)")
    parser.add_argument("--out", default=str(RESULTS / "search_speed"), help="results path without extension")
    args = parser.parse_args(argv)

    import faiss
    import hnswlib
    import torch

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    all_threads = os.cpu_count() or 1
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[dict] = []
    sets: list[str] = []
    state = {"lfw_how": None, "done": False}

    def save(_row=None) -> list[str]:
        """Write the results so far (after every row, so a cut-short run still leaves its table)."""
        import scipy
        import sklearn

        from facespace.files import write_text_atomic

        meta = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "complete": state["done"],
            "machine": {"cpu_count": all_threads, "platform": platform.platform(), "processor": platform.processor(),
                        "load_average_before": [round(v, 2) for v in load_before],
                        "load_average_after": [round(v, 2) for v in os.getloadavg()]},  # fmt: skip
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                         "faiss": faiss.__version__, "hnswlib": getattr(hnswlib, "__version__", "0.8.0"),
                         "scipy": scipy.__version__, "sklearn": sklearn.__version__},  # fmt: skip
            "queries": args.queries, "k": K, "metric": "l2", "lfw_codes": state["lfw_how"],
            "total_seconds": round(time.perf_counter() - started, 1),
        }  # fmt: skip
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
        summary = [line for s in sets for line in ratios(rows, s)]
        md = [
            "# Search speed" + ("" if state["done"] else " (PARTIAL: the run was still going or was cut short)"), "",
            f"{args.queries} queries, k = {K}, l2 metric. Recall@10 is against faiss IndexFlatL2 (exact).",
            "Memory is the growth of resident memory while building (the index's own copy of the vectors included).",
            "q/s all = all threads of the machine. Run on a shared machine: see the load averages.", "",
            table(rows), "", "Ratios:", "", *summary, "",
            f"- date: {meta['date']}", f"- command: `{meta['command']}`",
            f"- machine: {all_threads} CPUs, {meta['machine']['platform']}, load average before "
            f"{meta['machine']['load_average_before']}, after {meta['machine']['load_average_after']}",
            f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
            f"- LFW codes: {state['lfw_how']}", f"- total time: {meta['total_seconds']} s", "",
        ]  # fmt: skip
        write_text_atomic(out.with_suffix(".md"), "\n".join(md))
        return summary

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    name = f"random {args.n:,} x {args.dim}"
    log(name)
    sets.append(name)
    # random vectors: the automatic width (from a sample's nearest-neighbour distance) makes huge
    # buckets at 1M, so a fixed one; near neighbours are hardly nearer than the rest here
    run_set(name, x, q, all_threads, log, [(16, 6, 6.0)], on_row=lambda r: (rows.append(r), save()))
    del x
    if not args.no_lfw and LFW.is_dir():
        g, lq, state["lfw_how"] = lfw_codes(args.model, args.queries, log)
        lname = f"LFW codes {len(g):,} x {g.shape[1]}"
        sets.append(lname)
        run_set(lname, g, lq, all_threads, log, [(8, 8, None), (16, 8, None)], on_row=lambda r: (rows.append(r), save()))
    state["done"] = True
    summary = save()
    out = Path(args.out)
    log("\n".join(summary))
    log(f"wrote {out.with_suffix('.md')} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

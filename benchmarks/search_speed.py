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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_windows import LFW, lfw_augmented_codes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
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


def parse_pairs(specs: list[str], what: str) -> list[tuple[int, int]]:
    """`["32:200", ...]` -> `[(32, 200), ...]` (M:efConstruction)."""
    out = []
    for spec in specs:
        if spec == "none":
            continue
        a, sep, b = spec.partition(":")
        if not sep:
            raise SystemExit(f"{what} expects M:EF_CONSTRUCTION, e.g. 32:200; got {spec!r}")
        out.append((int(a), int(b)))
    return out


def parse_lsh(specs: list[str]) -> list[tuple[int, int, float | None]]:
    """`["16:8:auto", "16:6:6"]` -> `[(tables, bits, width or None)]`."""
    out = []
    for spec in specs:
        if spec == "none":
            continue
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise SystemExit(f"--lsh expects TABLES:BITS[:WIDTH|auto], e.g. 16:8:auto; got {spec!r}")
        width = None if len(parts) == 2 or parts[2] == "auto" else float(parts[2])
        out.append((int(parts[0]), int(parts[1]), width))
    return out


def run_set(name: str, x: np.ndarray, q: np.ndarray, all_threads: int, log, plan: dict, on_row=None) -> list[dict]:
    """Every method of `plan` on one vector set. Returns one row per (method, search setting).

    `plan`: "hnsw" and "faiss_hnsw" (M, efConstruction) pairs, "ef" search values, "raw_ef"
    (hnswlib queried directly on the first facespace graph), "lsh" (tables, bits, width or None)
    and "probes". One build per setting, reused across every search value.
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
            "recall@10": round(recall(ids, truth), 4), "note": note, "load": round(os.getloadavg()[0], 2),
        }  # fmt: skip
        rows.append(row)
        if on_row is not None:
            on_row(row)
        log(f"  {method:22s} {params:34s} build {row['build_s']:7.1f}s  mem {row['memory_mb']:5d} MB  "
            f"q/s {row['qps_1']:9.1f} (1) {row['qps_all']:9.1f} ({all_threads})  recall {row['recall@10']:.4f}  load {row['load']}")
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

    for n, (M, efc) in enumerate(plan["hnsw"]):
        graph, b, m = build(lambda: (lambda i: (i.add(x), i)[1])(Index(x.shape[1], "l2", "hnsw", M=M, ef_construction=efc)))
        for ef in plan["ef"]:
            graph.configure(ef_search=ef)
            record("facespace hnsw", f"M {M}, efC {efc}, ef {ef}", b, m,
                   lambda t: graph.configure(threads=t).search(q, K)[1], "hnswlib inside")  # fmt: skip
        if n == 0:
            raw = graph._impl._graph  # the same hnswlib graph, queried directly: the wrapper's overhead
            for ef in plan["raw_ef"]:
                raw.set_ef(ef)
                record("hnswlib (raw)", f"same graph, ef {ef}", 0.0, 0,
                       lambda t: raw.knn_query(q, K, num_threads=t)[0].astype(np.int64), f"build = facespace hnsw M {M}, efC {efc}")  # fmt: skip
            del raw
        del graph

    for M, efc in plan["faiss_hnsw"]:
        fh, b, m = build(lambda: (lambda f: (setattr(f.hnsw, "efConstruction", efc), f.add(x), f)[2])(faiss.IndexHNSWFlat(x.shape[1], M)))
        for ef in plan["ef"]:
            fh.hnsw.efSearch = ef
            record("faiss IndexHNSWFlat", f"M {M}, efC {efc}, ef {ef}", b, m, lambda t: fh.search(q, K)[1])
        del fh

    # LSH: p-stable hashing for l2; the recall/speed knob is n_probes (and tables, bits, width)
    for tables, bits, width in plan["lsh"]:
        # the tables are sorted on the first search: a one-query search counts as part of the build
        lsh, b, m = build(lambda: (lambda i: (i.add(x), i.search(q[:1], K), i)[2])(
            Index(x.shape[1], "l2", "lsh", n_tables=tables, n_bits=bits, bucket_width=width)))
        w = lsh.settings["bucket_width"]
        for probes in plan["probes"]:
            lsh.configure(n_probes=probes)
            record("facespace lsh", f"T {tables}, bits {bits}, probes {probes}, w {w:.3g}", b, m, lambda t: lsh.search(q, K)[1],
                   "width " + ("automatic" if width is None else "fixed"))  # fmt: skip
        del lsh
    _ = hnswlib  # imported up front so a missing library fails before the long builds
    return rows


def lfw_codes(model_path: str | None, n_queries: int, log) -> tuple[np.ndarray, np.ndarray, str]:
    """Codes (32) of all LFW faces at 32x32: gallery and held-out queries (PCA unless a model is given)."""
    from facespace.data import load_faces

    faces = load_faces(LFW, size=32, progress=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(faces))
    qi, gi = order[:n_queries], order[n_queries:]
    if model_path:
        from facespace.models.registry import load_model
        from facespace.pipelines.codes import encode

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
        if r["method"] in ("facespace hnsw", "faiss IndexHNSWFlat", "facespace lsh"):
            meets = r["recall@10"] >= 0.95 and r["qps_1"] >= 20 * exact["qps_1"]
            out.append(f"- {name}: {r['method']} {r['params']}: recall {r['recall@10']}, "
                       f"{r['qps_1'] / exact['qps_1']:.1f}x exact's q/s (1 thread), {r['qps_all'] / exact['qps_all']:.1f}x (all)"
                       + (" (meets recall >= 0.95 at >= 20x)" if meets else ""))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="random,lfw", help="comma list of: random, lfw (LFW codes), lfw-aug (1M real-like)")
    parser.add_argument("--n", type=int, default=1_000_000, help="random vectors, and the size of the lfw-aug set")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--hnsw", action="append", help="M:EF_CONSTRUCTION of a facespace hnsw build (repeat; default 32:200; none: skip)")
    parser.add_argument("--faiss-hnsw", action="append", help="M:EF_CONSTRUCTION of a faiss IndexHNSWFlat build (repeat; default 32:200)")
    parser.add_argument("--ef", default="32,64,128,256,512", help="comma list of ef_search values for every graph")
    parser.add_argument("--raw-ef", default="64,256", help="ef values for raw hnswlib on the first facespace graph")
    parser.add_argument("--lsh", action="append", help="TABLES:BITS[:WIDTH|auto] (repeat; default per set; none: no LSH)")
    parser.add_argument("--probes", default="0,4,16", help="comma list of LSH n_probes values")
    parser.add_argument("--cache-codes", help="folder to keep the lfw-aug codes in between runs (they take minutes to make)")
    parser.add_argument("--model", help="a checkpoint whose codes make the LFW set (default: scikit-learn PCA)")
    parser.add_argument("--out", default=str(RESULTS / "search_speed"), help="results path without extension")
    args = parser.parse_args(argv)

    import faiss
    import hnswlib
    import torch

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    ints = lambda text: [int(v) for v in text.split(",") if v]  # noqa: E731
    plan = {"hnsw": parse_pairs(args.hnsw or ["32:200"], "--hnsw"),
            "faiss_hnsw": parse_pairs(args.faiss_hnsw or ["32:200"], "--faiss-hnsw"),
            "ef": ints(args.ef), "raw_ef": ints(args.raw_ef), "probes": ints(args.probes)}  # fmt: skip
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(wanted) - {"random", "lfw", "lfw-aug"})
    if unknown:
        raise SystemExit(f"unknown set(s) {', '.join(unknown)}; expected: random, lfw, lfw-aug")
    all_threads = os.cpu_count() or 1
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[dict] = []
    sets: list[str] = []
    state = {"how": {}, "done": False}

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
            "queries": args.queries, "k": K, "metric": "l2", "sets": state["how"],
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
            "q/s all = all threads of the machine. Builds use all threads. Run on a shared machine: see the load",
            "averages (the 1-minute load when each row finished is in the json).", "",
            table(rows), "", "Ratios (target at 1M: recall@10 >= 0.95 at >= 20x exact's q/s):", "", *summary, "",
            f"- date: {meta['date']}", f"- command: `{meta['command']}`",
            f"- machine: {all_threads} CPUs, {meta['machine']['platform']}, load average before "
            f"{meta['machine']['load_average_before']}, after {meta['machine']['load_average_after']}",
            f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
            *[f"- {k}: {v}" for k, v in state["how"].items()], f"- total time: {meta['total_seconds']} s", "",
        ]  # fmt: skip
        write_text_atomic(out.with_suffix(".md"), "\n".join(md))
        return summary

    def one(name: str, x: np.ndarray, q: np.ndarray, lsh_default: list[str], how: str) -> None:
        log(name)
        sets.append(name)
        state["how"][name] = how
        run_set(name, x, q, all_threads, log, {**plan, "lsh": parse_lsh(args.lsh or lsh_default)},
                on_row=lambda r: (rows.append(r), save()))  # fmt: skip

    if "random" in wanted:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
        q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        one(f"random {args.n:,} x {args.dim}", x, q, ["16:6:6", "16:6:auto"], "numpy standard normal, seed 0")
        del x
    if "lfw-aug" in wanted and LFW.is_dir():
        saved = Path(args.cache_codes) / f"lfw_aug_{args.n}_{args.queries}.npz" if args.cache_codes else None
        if saved is not None and saved.is_file():  # made by lfw_augmented_codes with these sizes
            with np.load(saved) as z:
                g, lq, how = z["gallery"], z["queries"], str(z["how"]) + f" (read back from {saved})"
        else:
            g, lq, how = lfw_augmented_codes(args.n, args.queries, log)
            if saved is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                np.savez(saved, gallery=g, queries=lq, how=how)
        one(f"LFW-augmented codes {len(g):,} x {g.shape[1]}", g, lq, ["16:8:auto"], how)
        del g
    if "lfw" in wanted and LFW.is_dir():
        g, lq, how = lfw_codes(args.model, args.queries, log)
        one(f"LFW codes {len(g):,} x {g.shape[1]}", g, lq, ["8:8:auto", "16:8:auto"], how)
    state["done"] = True
    summary = save()
    out = Path(args.out)
    log("\n".join(summary))
    log(f"wrote {out.with_suffix('.md')} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

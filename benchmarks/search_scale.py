"""How search grows: exact / hnsw / ivfpq side by side at 1M, 10M (and, streamed from disk, 100M) codes.

The codes are real-like: PCA(32) codes of augmented LFW photos, as search_speed.py's lfw-aug set
(`lfw_augmented_codes`: the same photos, 38x38 load of the 108-pixel box, PCA fitted on the
centred 32x32 windows of the gallery photos, queries = one view of each of 1,000 held-out
photos). To reach 10M and 100M views without holding images, a view's code is computed from
per-window codes: each of the 98 windows of a photo (7x7 offsets x mirror) is projected once per
colour channel, and a view is `sum_c brightness * gain_c * P[photo, window, c] - mean @ W`
(brightness 0.8-1.2, a gain per channel 0.9-1.1; not clipped to [0, 1], so it is exactly linear).
The codes are streamed to a .npy file on disk (`--cache`), chunk by chunk.

Each method runs in its own processes: one builds the index (from the codes file) and saves it,
a fresh one loads it and answers the queries, so resident memory is that of serving alone. Per
row: build time (ivfpq: adding, training and encoding; saving apart), peak resident memory while
building, size on disk, load time, resident memory while serving (after the queries; its
anonymous and file-mapped parts: pages of memory-mapped files count while they are resident),
queries/s on 1 thread and on all threads, and recall@10 against the exact index.

    nice -n 10 .venv/bin/python benchmarks/search_scale.py --sizes 1M,10M --part index

Writes benchmarks/results/search_scale.{json,md} (after every row, so a cut-short run leaves its table).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_windows import CHUNK, make_codes  # noqa: E402
from search_scale_report import K, params_text, render  # noqa: E402
from search_speed import recall  # noqa: E402  (recall@k against exact, as search_speed.py counts it)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def memory_now() -> dict[str, float]:
    """Resident memory of this process, MB: total, anonymous, file-mapped."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    mb = lambda key: int(fields[key].split()[0]) / 1024  # noqa: E731
    return {"rss_mb": round(mb("VmRSS")), "anon_mb": round(mb("RssAnon")), "file_mb": round(mb("RssFile")),
            "peak_mb": round(mb("VmHWM"))}


# ---- one method, in its own processes


def worker_build(args) -> dict:
    """Build one index from the codes file and save it; report time, peak memory and size on disk."""
    from facespace.index import Index
    from facespace.index.store import index_bytes

    codes = np.load(args.codes, mmap_mode="r")
    n, dim = codes.shape
    settings = json.loads(args.settings)
    t0 = time.perf_counter()
    if args.method == "ivfpq":
        index = Index(dim, "l2", "ivfpq", **settings)
        for start in range(0, n, CHUNK):  # streamed: the vectors go to memory-mapped files
            index.add(codes[start : start + CHUNK])
        index.search(np.asarray(codes[:1]), K)  # trains on a sample and encodes every vector
    else:
        index = Index(dim, "l2", args.method, **settings)
        index.add(codes)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.save(args.index)
    save_s = time.perf_counter() - t0
    peak = memory_now()["peak_mb"]  # VmHWM: ru_maxrss would keep the parent's peak across exec
    return {"build_s": round(build_s, 1), "save_s": round(save_s, 1), "build_peak_mb": round(peak),
            "disk_mb": round(index_bytes(args.index) / 2**20), "settings": index.settings}


def worker_serve(args) -> dict:
    """Load one index in a fresh process and answer the queries at each search setting and thread count."""
    import faiss

    from facespace.index import Index

    if args.method == "exact":  # only exact searches with torch: the others' memory is measured without it
        import torch
    queries = np.load(args.queries)
    before_load = memory_now()  # the interpreter, numpy, faiss (and torch for exact): not the index's
    t0 = time.perf_counter()
    index = Index.load(args.index)
    load_s = time.perf_counter() - t0
    after_load = memory_now()
    rows = []
    for search in json.loads(args.sweep):
        if search:
            index.configure(**search)
        row = {"search": search}
        for threads in (1, os.cpu_count() or 1):
            if args.method == "exact":
                torch.set_num_threads(threads)
            faiss.omp_set_num_threads(threads)
            if args.method != "exact":
                index.configure(threads=threads)
            q = queries if args.method != "exact" or threads > 1 else queries[: args.exact_one_thread]
            index.search(q[:5], K)  # warm: the first search of ivfpq maps its lists
            t = time.perf_counter()
            _, ids = index.search(q, K)
            row[f"qps_{threads}"] = round(len(q) / (time.perf_counter() - t), 1)
            if threads > 1:
                found = Path(args.index).with_suffix(f".found{len(rows)}.npy")
                np.save(found, ids)
                row["found"] = str(found)
        row["memory"] = memory_now()
        row["load"] = round(os.getloadavg()[0], 2)
        rows.append(row)
    return {"load_s": round(load_s, 2), "before_load": before_load, "after_load": after_load, "rows": rows}


def worker_stream(args) -> dict:
    """Exact search without an index: the codes file read in chunks from disk, faiss.knn on each, merged."""
    import faiss

    codes = np.load(args.codes, mmap_mode="r")
    queries = np.load(args.queries)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    best_d = np.full((len(queries), K), np.inf, np.float32)
    best_i = np.full((len(queries), K), -1, np.int64)
    t = time.perf_counter()
    step = 4_000_000
    for start in range(0, len(codes), step):
        d, i = faiss.knn(queries, np.ascontiguousarray(codes[start : start + step]), K)
        d, i = np.concatenate([best_d, d], 1), np.concatenate([best_i, i + start], 1)
        order = np.argsort(d, axis=1, kind="stable")[:, :K]
        best_d, best_i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
    secs = time.perf_counter() - t
    found = Path(args.index).with_suffix(".found0.npy")
    np.save(found, best_i)
    row = {"search": {}, "qps_1": None, f"qps_{os.cpu_count() or 1}": round(len(queries) / secs, 2),
           "found": str(found), "memory": memory_now(), "load": round(os.getloadavg()[0], 2)}
    return {"load_s": 0.0, "after_load": {}, "rows": [row]}


def run_worker(kind: str, **options) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, *[f"--{k.replace('_', '-')}={v}" for k, v in options.items()]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="comma list of set sizes, e.g. 1M,10M,100M")
    parser.add_argument("--part", default="index", choices=["index"], help="index (the gallery part is gallery_scale.py)")
    parser.add_argument("--methods", default="exact,hnsw,ivfpq", help="comma list of: exact, hnsw, ivfpq")
    parser.add_argument("--hnsw-max", default="10M", help="skip hnsw above this size (its build grows fastest)")
    parser.add_argument("--hnsw", default="16:100", help="M:EF_CONSTRUCTION of the hnsw build")
    parser.add_argument("--exact-max", default="10M", help="above this size exact search streams the codes file "
                        "from disk (faiss.knn per 4M rows, all threads) instead of building an index in memory")
    parser.add_argument("--ef", default="32,64,128", help="hnsw ef_search values")
    parser.add_argument("--probes", default="0.5,1,2,4", help="ivfpq n_probes as multiples of the planned value")
    parser.add_argument("--rerank", default="100,200,400", help="ivfpq rerank values")
    parser.add_argument("--m", default="plan", help="ivfpq builds: comma list of sub-quantiser counts (plan: the planned one)")
    parser.add_argument("--lists", default="plan", help="ivfpq builds: comma list of list counts (plan: the planned one)")
    parser.add_argument("--memory", default="0.25", help="ivfpq budget as a fraction of the raw vectors' bytes")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--exact-one-thread", type=int, default=100, help="queries timed for exact on 1 thread")
    parser.add_argument("--cache", default=str(ROOT / "runs" / "search_scale"), help="codes and indexes go here")
    parser.add_argument("--out", default=str(RESULTS / "search_scale"), help="results path without extension")
    parser.add_argument("--note", action="append", default=[], help="a line for the results' notes (repeat)")
    parser.add_argument("--keep", action="store_true", help="keep the rows of other sizes from the results file "
                        "already there (e.g. add 100M to a 1M,10M run)")
    # the worker processes
    parser.add_argument("--worker", choices=["build", "serve", "stream"], help=argparse.SUPPRESS)
    for name in ("method", "codes", "queries-file", "index", "settings", "sweep"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.queries = args.queries_file
        work = {"build": worker_build, "serve": worker_serve, "stream": worker_stream}[args.worker]
        result = work(args)
        print(json.dumps(result, default=str))
        return

    import faiss
    import hnswlib
    import torch

    from facespace.files import write_text_atomic
    from facespace.errors import FacespaceError
    from facespace.index.sizing import WORKING, default_probes, plan_ivfpq

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]  # none (with --keep): rewrite the report
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    sizes = [n for n in sizes if n]
    rows: list[dict] = []
    state = {"sets": {}, "skipped": [], "budgets": {}, "done": False, "earlier": []}
    if args.keep and Path(args.out).with_suffix(".json").is_file():
        prior = json.loads(Path(args.out).with_suffix(".json").read_text())
        rows += [r for r in prior["rows"] if r["n"] not in sizes]
        pm = prior["meta"]
        state["sets"].update({int(k): v for k, v in pm["sets"].items() if int(k) not in sizes})
        state["budgets"].update({int(k): v for k, v in pm.get("budgets", {}).items() if int(k) not in sizes})
        state["skipped"] += [t for t in pm["skipped"] if not any(t.startswith(f"{n:,}:") for n in sizes)]
        state["earlier"] = pm.get("earlier", []) + [{k: pm[k] for k in ("date", "command", "complete", "total_seconds")}
                                                     | {"load_average": pm["machine"]["load_average_after"]}]

    def save() -> None:
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", *sys.argv]), "complete": state["done"],
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
                        "load_average_before": [round(v, 2) for v in load_before],
                        "load_average_after": [round(v, 2) for v in os.getloadavg()]},
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                         "faiss": faiss.__version__, "hnswlib": getattr(hnswlib, "__version__", "0.8.0")},
            "queries": args.queries, "k": K, "metric": "l2", "sets": state["sets"],
            "skipped": state["skipped"] + [t for t in args.note if t not in state["skipped"]],  # notes kept by --keep
            "budgets": state["budgets"], "earlier": state["earlier"],
            "total_seconds": round(time.perf_counter() - started, 1),
        }  # fmt: skip
        out = Path(args.out)
        write_text_atomic(out.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
        write_text_atomic(out.with_suffix(".md"), render(meta, rows, float(args.memory)))

    hnsw_max = parse_size(args.hnsw_max)
    M, efc = (int(v) for v in args.hnsw.split(":"))
    for n in sizes:
        codes, queries, how = make_codes(n, args.queries, cache, log)
        state["sets"][n] = how
        truth = None
        budget = int(float(args.memory) * n * 32 * 4)
        jobs = [(m, None) for m in methods if m != "ivfpq"]
        if "ivfpq" in methods:
            jobs += [("ivfpq", {**({} if v == "plan" else {"m": int(v)}), **({} if lists == "plan" else {"n_lists": int(lists)})})
                     for lists in args.lists.split(",") for v in args.m.split(",")]
        for method, override in jobs:
            if method == "hnsw" and n > hnsw_max:
                state["skipped"].append(f"{n:,}: hnsw not run (above --hnsw-max {args.hnsw_max}: its build grows "
                                        "fastest; about 7 min at 1M on these 2 cores)")
                save()
                continue
            if method == "exact":
                settings, sweep = {}, [{}]
            elif method == "hnsw":
                settings = {"M": M, "ef_construction": efc}
                sweep = [{"ef_search": int(e)} for e in args.ef.split(",")]
            else:
                try:
                    plan = plan_ivfpq(n, 32, budget)
                except FacespaceError:  # a small set: the fixed working allowance alone is above the fraction
                    budget += WORKING
                    plan = plan_ivfpq(n, 32, budget)
                state["budgets"][n] = budget
                settings = {**plan["settings"], **(override or {})}
                if "n_lists" in (override or {}):  # other lists: the plan's probes for them
                    settings["n_probes"] = default_probes(settings["n_lists"])
                base = settings["n_probes"]
                sweep = [{"n_probes": max(1, int(float(f) * base)), "rerank": int(r)}
                         for f in args.probes.split(",") for r in args.rerank.split(",")]
            index_path = cache / (f"{method}{'' if method != 'ivfpq' else '_m' + str(settings['m'])}"
                                  f"{'_l' + str(settings['n_lists']) if 'n_lists' in (override or {}) else ''}_{n}.index")
            if method == "exact" and n > parse_size(args.exact_max):
                log(f"{n:,} exact: streamed from disk")
                built = {"build_s": 0.0, "save_s": 0.0, "build_peak_mb": None, "disk_mb": round(Path(codes).stat().st_size / 2**20),
                         "settings": {"streamed": True}}
                served = run_worker("stream", codes=codes, queries_file=queries, index=index_path)
                if not any(t.startswith(f"{n:,}: exact is") for t in args.note):  # a --note may say it in more detail
                    state["skipped"].append(f"{n:,}: exact is faiss.knn over the codes file read from disk in 4M-row "
                                            "chunks (an in-memory exact index would not fit beside the other jobs); "
                                            "no 1-thread figure")
            else:
                log(f"{n:,} {method}: building with {settings}")
                built = run_worker("build", method=method, codes=codes, index=index_path, settings=json.dumps(settings))
                log(f"{n:,} {method}: built in {built['build_s']} s (+ {built['save_s']} s saving), peak "
                    f"{built['build_peak_mb']} MB, {built['disk_mb']} MB on disk; serving")
                served = run_worker("serve", method=method, queries_file=queries, index=index_path, sweep=json.dumps(sweep),
                                    exact_one_thread=args.exact_one_thread)
            for r in served["rows"]:
                found = np.load(r["found"])
                if method == "exact":
                    truth = found
                row = {"n": n, "method": method, "params": params_text(method, built["settings"], r["search"]),
                       "build_s": built["build_s"], "save_s": built["save_s"], "build_peak_mb": built["build_peak_mb"],
                       "disk_mb": built["disk_mb"], "load_s": served["load_s"], "memory": r["memory"],
                       "qps_1": r["qps_1"], "qps_all": r[f"qps_{os.cpu_count() or 1}"],
                       "recall@10": round(recall(found, truth), 4) if truth is not None else None,
                       "settings": built["settings"], "search": r["search"], "load": r["load"],
                       "before_load": served.get("before_load")}  # fmt: skip
                exact = next((x for x in rows if x["n"] == n and x["method"] == "exact"), None)
                if exact is not None:
                    row["speedup"] = round(row["qps_all"] / exact["qps_all"], 1)
                rows.append(row)
                log(f"  {method} {row['params']}: q/s {row['qps_1']} (1) {row['qps_all']} (all), recall {row['recall@10']}, "
                    f"RSS {r['memory']}")
                save()
    state["done"] = True
    save()
    log(f"wrote {Path(args.out).with_suffix('.md')} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""search_scale.py's report: the results table, the verdict against the target, the markdown page.

Everything here reads the rows and meta that search_scale.py writes to its JSON, so a page can be
rendered again from benchmarks/results/search_scale.json without measuring anything.
"""

from __future__ import annotations

K = 10  # neighbours per query (recall@10)


def params_text(method: str, settings: dict, search: dict) -> str:
    if method == "exact":
        return "streamed from disk" if settings.get("streamed") else ""
    if method == "hnsw":
        return f"M {settings['M']}, efC {settings['ef_construction']}, ef {search.get('ef_search', settings['ef_search'])}"
    s = {**settings, **search}
    return (f"lists {s['n_lists']} ({s['quantizer']}), m {s['m']}, probes {s['n_probes']}, rerank {s['rerank']}")


def table(rows: list[dict]) -> str:
    head = ("| vectors | method | params | build s | save s | build peak MB | disk MB | load s | serving RSS MB "
            "(anon + file) | q/s 1 thread | q/s all | x exact (all) | recall@10 |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        m = r["memory"]
        lines.append(f"| {r['n']:,} | {r['method']} | {r['params']} | {r['build_s']} | {r['save_s']} | "
                     f"{r['build_peak_mb']} | {r['disk_mb']} | {r['load_s']} | {m['rss_mb']} ({m['anon_mb']} + "
                     f"{m['file_mb']}) | {r['qps_1']} | {r['qps_all']} | {r.get('speedup', '')} | {r['recall@10']} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Per ivfpq or hnsw build: its fastest search setting with recall@10 >= 0.95, against the target."""
    out = []
    for n in sorted({r["n"] for r in rows}):
        exact = next((r for r in rows if r["n"] == n and r["method"] == "exact"), None)
        raw_mb = n * 32 * 4 / 2**20
        builds: dict[str, dict] = {}
        for r in rows:
            if r["n"] == n and r["method"] in ("ivfpq", "hnsw") and (r["recall@10"] or 0) >= 0.95:
                key = r["method"] + r["params"].split(", probes")[0].split(", ef ")[0]
                if key not in builds or r["qps_all"] > builds[key]["qps_all"]:
                    builds[key] = r
        for r in builds.values():
            if exact is None:
                continue
            one = r["qps_1"] / exact["qps_1"] if exact.get("qps_1") else None
            ok = (r["recall@10"] >= 0.95, r["qps_all"] >= 50 * exact["qps_all"] and (one is None or one >= 50),
                  r["memory"]["rss_mb"] <= raw_mb / 4)
            base = (r.get("before_load") or {}).get("rss_mb")
            out.append(f"- {n:,}, {r['method']} {r['params']} (the fastest with recall >= 0.95): recall {r['recall@10']}, "
                       f"{r['qps_all'] / exact['qps_all']:.0f}x exact's q/s on all threads"
                       + (f", {one:.0f}x on 1 thread" if one else "") + f" ({'>=' if ok[1] else '<'} 50x), serving "
                       f"RSS {r['memory']['rss_mb']} MB = {r['memory']['rss_mb'] / raw_mb:.2f} of the raw vectors' "
                       f"{raw_mb:.0f} MB ({'<=' if ok[2] else '>'} 1/4"
                       + (f"; {base} MB of it is the interpreter and libraries before loading" if base else "") + ")"
                       + (": meets the target" if all(ok) else ""))
    return out


def render(meta: dict, rows: list[dict], memory: float) -> str:
    """The markdown page of a run: `meta` and `rows` as written to the JSON; `memory` the ivfpq budget as a
    fraction of the raw vectors' bytes."""
    md = [
        "# Search at scale: exact / hnsw / ivfpq" + ("" if meta["complete"] else " (PARTIAL: still running or cut short)"),
        "",
        f"{meta['queries']} held-out queries, k = {K}, l2. Recall@10 is against the exact index's answers. Each index is "
        "built in one process and saved; a fresh process loads it and answers the queries, so the serving RSS is "
        "that process's resident memory after answering (anonymous + file-mapped pages; the raw vectors of "
        "ivfpq are a memory-mapped file, read only to re-rank the candidates). Build peak = the building "
        "process's peak RSS. x exact = q/s on all threads over exact's. ivfpq's settings come from "
        f"`plan_ivfpq` with a budget of {memory:g} of the raw vectors' bytes (--m adds builds with other code sizes); "
        "probes and rerank are swept. "
        "Run on 2 shared cores: see the load averages (1-minute load per row in the json).",
        "",
        table(rows), "", "Target at 10M: recall@10 >= 0.95 at >= 50x exact's q/s, serving RSS <= 1/4 of the raw vectors:",
        "", *verdicts(rows), "",
        *[f"- {k}" for k in meta["skipped"]],
        f"- date: {meta['date']}", f"- command: `{meta['command']}`",
        *[f"- earlier rows from: `{e['command']}` ({e['date']}, load average after {e['load_average']})"
          for e in meta["earlier"]],
        f"- machine: {meta['machine']['cpu_count']} CPUs, {meta['machine']['memory_gb']} GB, "
        f"{meta['machine']['platform']}, load average before {meta['machine']['load_average_before']}, after "
        f"{meta['machine']['load_average_after']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        *[f"- {int(k):,} vectors: {v}" for k, v in meta["sets"].items()],
        *[f"- {int(k):,} vectors: ivfpq planned for a budget of {v / 1e6:.0f} MB" + (" (a quarter of the raw vectors is below "
          "the 64 MiB working allowance: the allowance was added)" if v > memory * int(k) * 128 else "")
          for k, v in meta["budgets"].items()], f"- total time: {meta['total_seconds']} s", "",
    ]  # fmt: skip
    return "\n".join(md)

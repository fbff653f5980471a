"""A second query set for search_scale's 10M ivfpq builds: were their settings chosen on the queries they are scored on?

search_scale.py scores 1,000 queries (one view of each held-out LFW photo); the planner's list and
probe counts were fitted after looks at those scores. This scores other views of the same held-out
photos (another seed: other windows, brightness and gains) against exact search over the same 10M
codes, for the planned (16,384-list) and the 8,192-list builds that search_scale.py saved in its
cache. Writes benchmarks/results/search_scale_validate.{json,md}.

    .venv/bin/python benchmarks/search_scale_validate.py   # after search_scale.py --sizes 10M --lists plan,8192
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_windows import window_codes, window_pca  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE, OUT = ROOT / "runs" / "search_scale", ROOT / "benchmarks" / "results" / "search_scale_validate"
BUILDS = {"planned: 16,384 lists, m 8": "ivfpq_m8_10000000", "8,192 lists, m 8": "ivfpq_m8_l8192_10000000"}
SEARCHES = {"planned: 16,384 lists, m 8": [(32, 200), (40, 100), (40, 200), (48, 200)],
            "8,192 lists, m 8": [(24, 200), (32, 200), (40, 200)]}
SEED, K = 20261206, 10


def second_queries(n: int = 1000) -> np.ndarray:
    """`(n, 32)`: one more view of each held-out photo, drawn with another seed."""
    imgs, qi, _, mean, comps, _ = window_pca(n)
    table = window_codes(imgs[qi], mean, comps)
    rng = np.random.default_rng(SEED)
    gain = rng.uniform(0.8, 1.2, (len(qi), 1)) * rng.uniform(0.9, 1.1, (len(qi), 3))
    views = table[np.arange(len(qi)), rng.integers(0, 98, len(qi))]
    return (np.einsum("mc,mcd->md", gain.astype(np.float32), views) - mean @ comps).astype(np.float32)


def exact_neighbours(queries: np.ndarray, codes: np.ndarray, chunk: int = 2_000_000) -> np.ndarray:
    """`(q, K)` ids of the exact nearest codes (l2), merged over chunks of the memory-mapped file."""
    import faiss

    best_d = np.full((len(queries), K), np.inf, np.float32)
    best_i = np.zeros((len(queries), K), np.int64)
    for s in range(0, len(codes), chunk):
        d, i = faiss.knn(queries, np.ascontiguousarray(codes[s:s + chunk]), K)
        d, i = np.concatenate([best_d, d], 1), np.concatenate([best_i, i + s], 1)
        order = np.argsort(d, 1)[:, :K]
        best_d, best_i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
    return best_i


def main() -> None:
    from facespace.index import Index

    started = os.getloadavg()
    queries = second_queries()
    same = float(np.mean(np.all(np.isclose(queries, np.load(CACHE / "lfw_views_queries_1000.npy")), axis=1)))
    t = time.perf_counter()
    truth = exact_neighbours(queries, np.load(CACHE / "lfw_views_10000000.npy", mmap_mode="r"))
    rows = []
    for label, name in BUILDS.items():
        index = Index.load(CACHE / f"{name}.index")
        for probes, rerank in SEARCHES[label]:
            index.configure(n_probes=probes, rerank=rerank)
            index.search(queries[:50], K)  # warm
            t = time.perf_counter()
            _, ids = index.search(queries, K)
            qps = len(queries) / (time.perf_counter() - t)
            recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth)]))
            rows.append({"build": label, "probes": probes, "rerank": rerank, "recall@10": round(recall, 4),
                         "qps_all": round(qps, 1)})
            print(rows[-1], flush=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": ".venv/bin/python benchmarks/search_scale_validate.py", "seed": SEED,
            "queries_equal_to_the_benchmark's": same, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "load_average_before": started, "load_average_after": os.getloadavg()}}  # fmt: skip
    OUT.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# search_scale's 10M ivfpq builds on a second query set", "",
             f"1,000 other views of the held-out photos (seed {SEED}; {same:.0%} equal to search_scale's queries), "
             "recall@10 against exact search over the same 10M codes, q/s on all threads (batch of 1,000).", "",
             "| build | probes | re-ranked | recall@10 | q/s |", "|---|---|---|---|---|",
             *[f"| {r['build']} | {r['probes']} | {r['rerank']} | {r['recall@10']} | {r['qps_all']:,.0f} |" for r in rows], "",
             f"- command: `{meta['command']}`; {meta['date']}; {meta['machine']['cpu_count']} CPUs, load average "
             f"{started[0]:.2f} before, {meta['machine']['load_average_after'][0]:.2f} after", ""]
    OUT.with_suffix(".md").write_text("\n".join(lines))
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

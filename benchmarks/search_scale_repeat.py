"""How steady is search_scale's ratio? Exact and the planned ivfpq at 10M served again, alternately.

search_scale.py serves each saved index once, in one fresh process. Two quiet runs of it gave exact
58.4 and 71.9 queries/s on 2 threads with the same code and data, which moves the planned ivfpq's
"x exact" from 58x to 44x. This serves the two saved 10M indexes (exact and the planned ivfpq,
both from search_scale.py's cache) `--rounds` times each, alternating which goes first, each in a
fresh process, and reports every round's queries/s, the ratios and their median. Recall@10 is
counted against exact's answers of the same round.

    .venv/bin/python benchmarks/search_scale_repeat.py   # after search_scale.py --sizes 10M

Writes benchmarks/results/search_scale_repeat.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import run_worker  # noqa: E402
from search_scale_report import K  # noqa: E402
from search_speed import recall  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE, OUT = ROOT / "runs" / "search_scale", ROOT / "benchmarks" / "results" / "search_scale_repeat"


def serve(method: str, index: Path, queries: Path, sweep: list[dict]) -> dict:
    done = run_worker("serve", method=method, queries_file=queries, index=index, sweep=json.dumps(sweep),
                      exact_one_thread=100)
    row = done["rows"][0]
    return {"qps_1": row["qps_1"], "qps_all": row[f"qps_{os.cpu_count() or 1}"], "found": np.load(row["found"]),
            "load": row["load"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from facespace.index import Index

    exact_path, ivf_path = CACHE / f"exact_{args.n}.index", CACHE / f"ivfpq_m8_{args.n}.index"
    queries = CACHE / "lfw_views_queries_1000.npy"
    for p in (exact_path, ivf_path, queries):
        if not p.exists():
            raise SystemExit(f"{p} is missing: run benchmarks/search_scale.py --sizes 10M first")
    settings = Index.load(ivf_path).settings  # the planned search it was built with
    search = {"n_probes": settings["n_probes"], "rerank": settings["rerank"]}
    load_before = os.getloadavg()
    rounds = []
    for r in range(args.rounds):
        order = ("exact", "ivfpq") if r % 2 == 0 else ("ivfpq", "exact")
        got = {m: serve(m, exact_path if m == "exact" else ivf_path, queries, [{}] if m == "exact" else [search])
               for m in order}
        e, i = got["exact"], got["ivfpq"]
        rounds.append({"first": order[0], "exact_qps_1": e["qps_1"], "exact_qps_all": e["qps_all"],
                       "ivfpq_qps_1": i["qps_1"], "ivfpq_qps_all": i["qps_all"],
                       "x_exact_1": round(i["qps_1"] / e["qps_1"], 1), "x_exact_all": round(i["qps_all"] / e["qps_all"], 1),
                       "recall@10": round(recall(i["found"], e["found"]), 4), "load": [e["load"], i["load"]]})
        print(json.dumps(rounds[-1]), flush=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in ("x_exact_1", "x_exact_all", "exact_qps_all", "ivfpq_qps_all")}
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", *sys.argv]), "n": args.n, "k": K, "ivfpq_settings": settings,
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "load_average_before": [round(v, 2) for v in load_before],
                        "load_average_after": [round(v, 2) for v in os.getloadavg()]}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps({"meta": meta, "rounds": rounds, "median": med}, indent=1))
    lines = [f"# search_scale at {args.n:,}: exact and the planned ivfpq served {args.rounds} times, alternately", "",
             f"ivfpq as planned for a quarter of the raw vectors: {settings['n_lists']} lists ({settings['quantizer']}), "
             f"m {settings['m']}, {search['n_probes']} probes, {search['rerank']} re-ranked. 1,000 held-out queries, k = {K}; "
             "exact's 1-thread figure times 100 of them. Each serve is a fresh process that loads the saved index.", "",
             "| round | first | exact q/s (1 / 2 threads) | ivfpq q/s (1 / 2 threads) | x exact (1 / 2 threads) | recall@10 |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n + 1} | {r['first']} | {r['exact_qps_1']} / {r['exact_qps_all']} | {r['ivfpq_qps_1']} / "
              f"{r['ivfpq_qps_all']} | {r['x_exact_1']} / {r['x_exact_all']} | {r['recall@10']} |" for n, r in enumerate(rounds)]
    lines += ["", f"**Median: {med['x_exact_1']}x exact on 1 thread, {med['x_exact_all']}x on 2 threads** (exact "
              f"{med['exact_qps_all']} q/s, ivfpq {med['ivfpq_qps_all']} q/s on 2 threads); lowest round "
              f"{min(r['x_exact_1'] for r in rounds)}x / {min(r['x_exact_all'] for r in rounds)}x.", "",
              f"- date: {meta['date']}", f"- command: `{meta['command']}`",
              f"- machine: {meta['machine']['cpu_count']} CPUs, {meta['machine']['platform']}, load average before "
              f"{meta['machine']['load_average_before']}, after {meta['machine']['load_average_after']}", ""]
    OUT.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

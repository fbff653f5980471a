"""Galleries of a million people (issue 26): enrol and identify time at 10k, 100k and 1M enrolled faces.

One gallery per scoring ("nearest", "centroid") is grown through 10,000, 100,000 and 1,000,000 faces
of random people (128-d unit codes, 10 faces per person: a random centre plus noise, so a person's
faces lie at cosine distance ~0.27 from each other and ~1 from anyone else), enrolled with
`Gallery.enroll_many` in batches of 10,000 people. At each size it measures:

- enrol: one more person (10 faces) with `Gallery.enroll`, median of 3 (the SQLite transaction and
  the stranger threshold's recalibration, sampled beyond 20,000 faces);
- opening: a fresh `Gallery` catching its index up (a rebuild from SQLite after the bulk enrolment,
  then a reload of the snapshot);
- identify through the index: ms per probe for a batch of probes (half faces of enrolled people,
  half strangers) and for probes one at a time;
- today's exact scan (every code read from SQLite, `match_codes`): ms per probe, and whether the
  index's answers equal it (name, candidates and distances), probe by probe;
- for "nearest", an exact `Index` over all codes: one probe and a batch (what decides where the
  gallery index turns into an HNSW graph, `gallery_index.EXACT_MAX_ITEMS`).

Writes benchmarks/results/search_scale_gallery.{json,md}; gallery files go to --work (deleted at
the start of each run).

    nice -n 10 .venv/bin/python benchmarks/gallery_scale.py                       # the full run
    .venv/bin/python benchmarks/gallery_scale.py --sizes 10000 --scorings nearest --out /tmp/x   # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


class CodeEncoder:
    """An `Encoder` whose "images" are the codes themselves, shaped `(1, 1, d)`: enrols given codes."""

    kind = "codes"

    def __init__(self, dim: int):
        self.config = {"dim": dim}
        self.checkpoint_info: dict = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 1, self.config["dim"])

    @property
    def code_size(self) -> int:
        return self.config["dim"]

    def encode(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        return np.asarray(images, np.float32).reshape(len(images), -1).copy()


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def faces_of(centres: np.ndarray, per: int, rng: np.random.Generator, spread: float = 0.6) -> np.ndarray:
    """`(p, per, d)` unit codes around each centre."""
    noise = rng.normal(size=(len(centres), per, centres.shape[1])) / np.sqrt(centres.shape[1])
    return unit(centres[:, None, :] + spread * noise)


def same(a, b) -> bool:
    """Two `Identification`s give the same answer: name, candidate names, distances to 1e-9."""
    return (a.name == b.name and [c for c, _ in a.candidates] == [c for c, _ in b.candidates]
            and np.allclose([d for _, d in a.candidates], [d for _, d in b.candidates], rtol=0, atol=1e-9))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def log(*parts) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S} load {os.getloadavg()[0]:.1f}]", *parts, file=sys.stderr, flush=True)


def measure_size(path: Path, model: CodeEncoder, size: int, probes: np.ndarray, known: int, args) -> dict:
    from facespace.index import Index
    from facespace.people.gallery.gallery import Gallery
    from facespace.people.gallery.gallery_index import forget_held, read_rows
    from facespace.people.gallery.matching import match_codes

    out: dict = {"faces": size}
    g = Gallery(path, model)
    rng = np.random.default_rng(size)
    times = []
    for i in range(3):
        centre = unit(rng.normal(size=(1, model.code_size)))
        codes = faces_of(centre, args.per_person, rng)[0]
        _, t = timed(lambda: g.enroll(f"extra-{size}-{i}", codes[:, None, None, :], force=True))
        times.append(t)
    out["enrol_one_person_s"] = round(float(np.median(times)), 4)
    out["calibration"] = json.loads(g.meta.get("calibration") or dict(g.db.execute(
        "SELECT key, value FROM meta WHERE key = 'calibration'")).get("calibration") or "null")
    g.close()
    log(size, "enrol one person", out["enrol_one_person_s"], "s")

    forget_held()  # each opening below is timed as a new process would see it
    g = Gallery(path, model)
    gi = g.gallery_index()
    _, out["open_catch_up_s"] = timed(gi.sync)
    out["index_backend"], out["index_items"], out["index_rebuilt"] = gi.index.backend, len(gi.index), gi.rebuilt
    g.close()
    forget_held()
    g = Gallery(path, model)
    _, out["open_from_snapshot_s"] = timed(g.gallery_index().sync)
    out["snapshot_mb"] = round(Path(str(path) + ".index").stat().st_size / 2**20, 1)
    log(size, "index", out["index_backend"], "catch-up", round(out["open_catch_up_s"], 2), "s, reload",
        round(out["open_from_snapshot_s"], 2), "s")

    g.identify_codes(probes[:2])
    answers, t = timed(lambda: g.identify_codes(probes, k=5))
    out["identify_batch_ms_per_probe"] = round(1e3 * t / len(probes), 3)
    single = []
    for p in probes[: args.single]:
        _, t = timed(lambda: g.identify_codes(p[None], k=5))
        single.append(t)
    out["identify_single_ms_median"] = round(1e3 * float(np.median(single)), 3)
    out["identify_single_ms_p90"] = round(1e3 * float(np.quantile(single, 0.9)), 3)
    log(size, "identify batch", out["identify_batch_ms_per_probe"], "ms/probe, single", out["identify_single_ms_median"])

    # today's exact scan: every code read from SQLite and scored by match_codes
    scan = np.r_[np.arange(min(args.scan_probes // 2, known)), known + np.arange(min(args.scan_probes // 2, len(probes) - known))]
    t0 = time.perf_counter()
    codes, person, names = g.codes()
    read_s = time.perf_counter() - t0
    per_person = dict(g.db.execute("SELECT name, max_distance FROM people WHERE max_distance IS NOT NULL"))
    rej, rej_person = g.rejections()
    radius = max(float(dict(g.db.execute("SELECT key, value FROM meta")).get("reject_radius") or 0.0), 1e-6)
    exact, t = timed(lambda: match_codes(probes[scan], codes, person, names, threshold=g.threshold, metric=g.metric,
                                         k=5, per_person=per_person, rejected=rej, rejected_person=rej_person,
                                         radius=radius, scoring=g.scoring))
    out["scan_read_codes_s"] = round(read_s, 3)
    out["scan_ms_per_probe"] = round(1e3 * t / len(scan), 3)
    out["scan_ms_per_probe_with_read"] = round(1e3 * (t + read_s) / len(scan), 3)
    found = [answers[i] for i in scan]
    kn = scan < known
    agree = np.array([same(a, b) for a, b in zip(found, exact)])
    top1 = np.array([a.name == b.name for a, b in zip(found, exact)])
    out["compared_probes"] = {"known": int(kn.sum()), "strangers": int((~kn).sum())}
    out["same_answer_as_scan"] = {"known": float(agree[kn].mean()), "strangers": float(agree[~kn].mean())}
    out["same_name_as_scan"] = {"known": float(top1[kn].mean()), "strangers": float(top1[~kn].mean())}
    out["strangers_named"] = int(sum(a.name is not None for a, k in zip(found, kn) if not k))
    log(size, "scan", out["scan_ms_per_probe_with_read"], "ms/probe; same answers", out["same_answer_as_scan"])

    if g.scoring == "nearest":  # where an exact index stops being fast enough for one probe
        ids, _, vectors = read_rows(g.db, None, model.code_size)
        exact_index = Index(model.code_size, metric=g.metric)
        exact_index.add(vectors, ids=ids)
        exact_index.search(probes[:1], 32)
        one = [timed(lambda: exact_index.search(p[None], 32))[1] for p in probes[:10]]
        _, t = timed(lambda: exact_index.search(probes, 32))
        out["exact_index_single_ms"] = round(1e3 * float(np.median(one)), 2)
        out["exact_index_batch_ms_per_probe"] = round(1e3 * t / len(probes), 3)
        del exact_index, vectors
        log(size, "exact index single", out["exact_index_single_ms"], "ms, batch", out["exact_index_batch_ms_per_probe"])
    g.close()
    return out


def ef_sweep(path: Path, model: CodeEncoder, efs: list[int], args) -> dict:
    """Recall of an HNSW-backed gallery against the full scan at several `ef_search` (one probe at a time)."""
    from facespace.people.gallery.gallery import Gallery

    g = Gallery(path, model)
    index = g.gallery_index().sync()
    rng = np.random.default_rng(args.seed + 1)
    codes, _, _ = g.codes()
    n = args.scan_probes // 2
    known = unit(codes[rng.choice(len(codes), n, replace=False)] + 0.4 * rng.normal(size=(n, args.dim)) / np.sqrt(args.dim))
    probes = np.concatenate([known, unit(rng.normal(size=(n, args.dim)))])
    del codes
    from facespace.people.gallery.matching import match_codes

    all_codes, person, names = g.codes()
    radius = max(float(dict(g.db.execute("SELECT key, value FROM meta")).get("reject_radius") or 0.0), 1e-6)
    exact = match_codes(probes, all_codes, person, names, threshold=g.threshold, metric=g.metric, k=5, radius=radius,
                        scoring=g.scoring)
    del all_codes
    rows = []
    for ef in efs:
        index.configure(ef_search=ef)
        found, times = [], []
        for p in probes:
            answer, t = timed(lambda: g.identify_codes(p[None], k=5))
            found += answer
            times.append(t)
        agree = np.array([same(a, b) for a, b in zip(found, exact)])
        top1 = np.array([a.name == b.name for a, b in zip(found, exact)])
        rows.append({"ef_search": ef, "single_ms_median": round(1e3 * float(np.median(times)), 2),
                     "same_answer": {"known": float(agree[:n].mean()), "strangers": float(agree[n:].mean())},
                     "same_name": {"known": float(top1[:n].mean()), "strangers": float(top1[n:].mean())}})
        log("ef", ef, rows[-1])
    g.close()
    return {"gallery": path.name, "items": len(index), "probes": {"known": n, "strangers": n}, "rows": rows}


def run_scoring(scoring: str, args) -> dict:
    from facespace.people.gallery.gallery import Gallery

    work = Path(args.work)
    path = work / f"{scoring}.db"
    for suffix in ("", "-wal", "-shm", ".index"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    model = CodeEncoder(args.dim)
    rng = np.random.default_rng(args.seed)
    g = Gallery(path, model, scoring=scoring)
    centres: list[np.ndarray] = []
    enrolled, rows, bulk = 0, [], []
    for size in sorted(args.sizes):
        while enrolled < size:
            n_people = min(args.batch_people, (size - enrolled) // args.per_person)
            c = unit(rng.normal(size=(n_people, args.dim)))
            f = faces_of(c, args.per_person, rng)
            first = sum(len(c) for c in centres)
            people = {f"person-{first + i}": f[i][:, None, None, :] for i in range(n_people)}
            _, t = timed(lambda: g.enroll_many(people, force=True))
            centres.append(c)
            enrolled += n_people * args.per_person
            bulk.append({"faces_after": enrolled, "faces_added": n_people * args.per_person, "seconds": round(t, 2)})
            log(scoring, "bulk enrol", n_people * args.per_person, "faces ->", enrolled, f"in {t:.1f} s")
            centres = [np.concatenate(centres)]
        all_centres = centres[0]
        pick = rng.choice(len(all_centres), args.probes // 2, replace=False)
        known = faces_of(all_centres[pick], 1, rng)[:, 0]
        strangers = faces_of(unit(rng.normal(size=(args.probes - len(pick), args.dim))), 1, rng)[:, 0]
        g.close()
        rows.append(measure_size(path, model, size, np.concatenate([known, strangers]), len(known), args))
        g = Gallery(path, model)
    g.close()
    return {"scoring": scoring, "sizes": rows, "bulk_enrol": bulk}


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    m = results["machine"]
    lines = ["# Galleries of a million people: enrol and identify time", "",
             f"- command: `{results['command']}`",
             f"- machine: {m['cpu_count']} CPUs, {m['platform']}, load average {m['load_start'][0]:.1f} at the start, "
             f"{m['load_end'][0]:.1f} at the end (other work shared the cores)",
             f"- versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}",
             f"- data: random people, {results['args']['per_person']} unit codes of dimension {results['args']['dim']} each; "
             f"{results['args']['probes']} probes per size, half faces of enrolled people, half strangers", "",
             "| scoring | faces | enrol 1 person (s) | index | catch-up / reload (s) | identify batch (ms/probe) | "
             "identify 1 probe (ms, median / p90) | today's scan (ms/probe, incl. reading) | same name as the scan (known / strangers) | "
             "same answer: name, 5 candidates, distances | exact index 1 probe / batch (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for block in results["runs"]:
        for r in block["sizes"]:
            same_ = r["same_answer_as_scan"]
            exact = (f"{r['exact_index_single_ms']} / {r['exact_index_batch_ms_per_probe']}"
                     if "exact_index_single_ms" in r else "")
            lines.append(f"| {block['scoring']} | {r['faces']:,} | {r['enrol_one_person_s']} | {r['index_backend']} "
                         f"({r['index_items']:,}) | {r['open_catch_up_s']:.2f} / {r['open_from_snapshot_s']:.2f} | "
                         f"{r['identify_batch_ms_per_probe']} | {r['identify_single_ms_median']} / {r['identify_single_ms_p90']} | "
                         f"{r['scan_ms_per_probe_with_read']} | {r['same_name_as_scan']['known']:.3f} / "
                         f"{r['same_name_as_scan']['strangers']:.3f} | {same_['known']:.3f} / {same_['strangers']:.3f} "
                         f"(of {r['compared_probes']['known']} / {r['compared_probes']['strangers']}) | {exact} |")
    lines += ["", "Bulk enrolment (enroll_many, 10,000 people a transaction, recalibration included):", ""]
    for block in results["runs"]:
        lines.append(f"- {block['scoring']}: " + ", ".join(f"{b['faces_added']:,} faces to {b['faces_after']:,} in "
                                                           f"{b['seconds']} s" for b in block["bulk_enrol"]))
    lines += ["", "Calibration at each size (facts the gallery recorded):", ""]
    for block in results["runs"]:
        for r in block["sizes"]:
            c = r["calibration"] or {}
            lines.append(f"- {block['scoring']} {r['faces']:,}: {c.get('sampled_faces', 'all')} faces scored, "
                         f"{c.get('impostor_scores')} impostor scores, genuine accept rate {c.get('genuine_accept_rate')}")
    if "ef_sweep" in results:
        sweep = results["ef_sweep"]
        lines += ["", f"HNSW search width on the {sweep['items']:,}-face gallery, {sweep['probes']['known']} known and "
                  f"{sweep['probes']['strangers']} stranger probes one at a time (`{sweep['command']}`, load "
                  f"{sweep['load'][0]:.1f}):", "",
                  "| ef_search | ms per probe (median) | same name as the scan (known / strangers) | same answer: name, 5 candidates, distances |",
                  "|---|---|---|---|"]
        for r in sweep["rows"]:
            lines.append(f"| {r['ef_search']} | {r['single_ms_median']} | {r['same_name']['known']:.3f} / "
                         f"{r['same_name']['strangers']:.3f} | {r['same_answer']['known']:.3f} / {r['same_answer']['strangers']:.3f} |")
    if "snorm" in results:
        lines += snorm_lines(results["snorm"])
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def snorm_lines(runs: dict) -> list[str]:
    """The section of `gallery_snorm.py`'s runs: S-norm through the index against the full S-norm scan."""
    lines = ["", "## S-norm galleries through the index", "",
             "The full scan reads every code and computes every centroid's cohort statistics per call; through the "
             "index (people as vectors whose inner product ranks them by S-norm), a shortlist closes once it surely "
             "holds the 5 best S-norm scores, scored with the statistics the gallery keeps per person "
             "(`benchmarks/gallery_snorm.py`). The hnsw rows are the same gallery with `EXACT_MAX_ITEMS` lowered below "
             "its number of people, as a gallery of a million faces has it. (Shortlists of centroids by cosine distance, "
             "closed by a bound on the S-norm score of anyone not returned, never closed on LFW before they held all "
             "1,681 people: hence the inner product.)", "",
             "| data | faces (people) | index | full scan (ms/probe: batch / 1 probe) | identify batch (ms/probe) "
             "| 1 probe (ms, median / p90) | same name as the scan (known / strangers) "
             "| same answer: name, 5 candidates, distances | shortlists asked of the index (width: probes) | never closed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for label, r in runs.items():
        for run in r["runs"]:
            closed = ", ".join(f"{w}: {c}" for w, c in run["shortlist_searched"].items())
            lines.append(f"| {label} | {r['faces']:,} ({r['people']:,}) | {run['index']} | {r['scan_ms_per_probe']} / "
                         f"{r['scan_single_ms']} | {run['batch_ms_per_probe']} | {run['single_ms_median']} / "
                         f"{run['single_ms_p90']} | {run['same_name']['known']:.3f} / {run['same_name']['strangers']:.3f} "
                         f"| {run['same_answer']['known']:.3f} / {run['same_answer']['strangers']:.3f} | {closed} "
                         f"| {run['never_closed']} |")
        notes.append(f"- {label}: `{r['command']}` on {r['date'][:10]}, load average {r['load'][0][0]:.1f} at the start, "
                     f"{r['load'][1][0]:.1f} at the end (2 shared cores); {r['data']}; {r['probes']['known']:,} known and "
                     f"{r['probes']['strangers']:,} stranger probes; enrolment {r['bulk_enrol_s']} s, one more person "
                     f"{r['enrol_one_person_s']} s (sampled calibration included)")
    return lines + [""] + notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--scorings", nargs="+", default=["nearest", "centroid"])
    parser.add_argument("--per-person", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--probes", type=int, default=200, help="probes per size (half known, half strangers)")
    parser.add_argument("--single", type=int, default=30, help="probes identified one at a time")
    parser.add_argument("--scan-probes", type=int, default=50, help="probes compared with today's full scan")
    parser.add_argument("--batch-people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(ROOT / "runs" / "gallery_scale"))
    parser.add_argument("--out", default=str(RESULTS / "search_scale_gallery"))
    parser.add_argument("--ef-sweep", type=int, nargs="*", default=None,
                        help="only: recall and time at these ef_search on the largest gallery --work holds "
                             "(nearest.db), added to the results")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import faiss
    import torch

    import facespace

    if args.ef_sweep:
        out = Path(args.out).with_suffix(".json")
        results = json.loads(out.read_text())
        results["ef_sweep"] = ef_sweep(Path(args.work) / "nearest.db", CodeEncoder(args.dim), args.ef_sweep, args)
        results["ef_sweep"]["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        results["ef_sweep"]["load"] = os.getloadavg()
        write(results, Path(args.out))
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    results = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "args": vars(args),
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_start": os.getloadavg()},
               "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                            "faiss": faiss.__version__, "facespace": facespace.__version__,
                            "sqlite": __import__("sqlite3").sqlite_version},
               "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "runs": []}
    for scoring in args.scorings:
        results["runs"].append(run_scoring(scoring, args))
        results["machine"]["load_end"] = os.getloadavg()
        write(results, Path(args.out))  # after each scoring, so a long run leaves its first half


if __name__ == "__main__":
    main()

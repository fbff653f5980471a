"""S-norm galleries through the index (issue 26): names and time against the full S-norm scan.

One "snorm" gallery of random people (as `gallery_scale.py`: 128-d unit codes, 10 faces per
person) is enrolled up to --faces, against a synthetic cohort of --cohort outside people (one
face each, drawn the same way, half of them crowded towards one direction so that people's cohort
statistics differ). For the same probes (half faces of enrolled people, half strangers) it
measures identification through the index (`Gallery.identify_codes`: a raw-distance shortlist
of people ranked by S-norm as an inner product (cosine galleries; lifted to one length and
searched by l2), grown until it surely holds the k best, then exact S-norm scoring with each
person's kept statistics) and the full S-norm scan (`match_codes` over every
code, as before); how often the index's answer has the scan's name, and its whole answer (5
candidates and distances); and how wide the shortlists grew. It does so with the exact index the
gallery keeps at this size, then with an HNSW graph (`gallery_index.EXACT_MAX_ITEMS` lowered
below the number of people), as a gallery of a million faces would have.

Adds "snorm" to benchmarks/results/search_scale_gallery.json and rewrites the .md with it
(`gallery_scale.write`); the gallery file goes to --work (deleted at the start).

    nice -n 10 .venv/bin/python benchmarks/gallery_snorm.py --faces 100000
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import RESULTS, ROOT, CodeEncoder, faces_of, log, same, timed, unit, write  # noqa: E402


def cohort_codes(rng: np.random.Generator, m: int, dim: int) -> np.ndarray:
    """`(m, dim)` faces of outside people, half crowded towards one direction."""
    centres = rng.normal(size=(m, dim))
    centres[: m // 2] += 0.5 * np.sqrt(dim) * unit(rng.normal(size=(1, dim)))
    return faces_of(unit(centres), 1, rng)[:, 0]


def measure(g, probes: np.ndarray, known: int, exact: list, args) -> dict:
    """Identification through the gallery's index against the full scan's answers `exact`."""
    from facespace.index import Index
    from facespace.people.gallery import shortlist

    searched: collections.Counter = collections.Counter()  # K -> probes whose shortlist was asked that wide
    scanned = [0]  # probes whose shortlist never closed, scored against every row
    search, score = Index.search, shortlist._score

    def counted_search(self, queries, k=10):
        searched[int(k)] += len(queries)
        return search(self, queries, k)

    def counted_score(db, z, ids, *rest):
        scanned[0] += len(z) if ids is None else 0
        return score(db, z, ids, *rest)

    g.identify_codes(probes[:2])
    Index.search, shortlist._score = counted_search, counted_score
    try:
        answers, t = timed(lambda: g.identify_codes(probes, k=5))
    finally:
        Index.search, shortlist._score = search, score
    single = [timed(lambda: g.identify_codes(p[None], k=5))[1] for p in probes[: args.single]]  # noqa: B023
    kn = np.arange(len(probes)) < known
    name = np.array([a.name == b.name for a, b in zip(answers, exact)])
    whole = np.array([same(a, b) for a, b in zip(answers, exact)])
    index = g.gallery_index().index
    kind = "lifted S-norm vectors" if g.gallery_index().snorm_ip else "centroids"
    return {"index": f"{index.backend} ({len(index):,} {kind})", "batch_ms_per_probe": round(1e3 * t / len(probes), 3),
            "single_ms_median": round(1e3 * float(np.median(single)), 3),
            "single_ms_p90": round(1e3 * float(np.quantile(single, 0.9)), 3),
            "same_name": {"known": float(name[kn].mean()), "strangers": float(name[~kn].mean())},
            "same_answer": {"known": float(whole[kn].mean()), "strangers": float(whole[~kn].mean())},
            "shortlist_searched": {str(w): c for w, c in sorted(searched.items())}, "never_closed": scanned[0]}


def random_gallery(path: Path, model: CodeEncoder, rng: np.random.Generator, args) -> tuple:
    """A gallery of --faces random faces; `(gallery, probes, known probes, description)`."""
    from facespace.people.gallery.gallery import Gallery

    g = Gallery(path, model, scoring="snorm", cohort=cohort_codes(rng, args.cohort, args.dim))
    people = args.faces // args.per_person
    centres = unit(rng.normal(size=(people, args.dim)))
    for start in range(0, people, 10_000):
        f = faces_of(centres[start : start + 10_000], args.per_person, rng)
        g.enroll_many({f"person-{start + i}": c[:, None, None, :] for i, c in enumerate(f)}, force=True)
        log("snorm bulk enrol to", start + len(f), "people")
    pick = rng.choice(people, args.probes // 2, replace=False)
    probes = np.concatenate([faces_of(centres[pick], 1, rng)[:, 0],
                             faces_of(unit(rng.normal(size=(args.probes - len(pick), args.dim))), 1, rng)[:, 0]])
    return g, probes, len(pick), (f"random people, {args.per_person} faces each, against a synthetic cohort of "
                                  f"{args.cohort:,} outside faces (half crowded to one side)")


def lfw_gallery(path: Path, model: CodeEncoder, args) -> tuple:
    """LFW's dlib codes (flip-averaged, `benchmarks/dlib_codes.py`) against the cohort the dlib card
    carries: the people with 2+ images enrolled but for their last image, which is a known probe;
    the people with one image who are not in the cohort are strangers."""
    from facespace.models.registry import EXTRAS_DIR
    from facespace.people.cohort_norm import CohortNorm
    from facespace.people.gallery.gallery import Gallery

    c = np.load(args.lfw)
    z = (0.5 * (c["codes"].astype(np.float64) + c["codes_flip"])).astype(np.float32)
    names = np.array([p.split("/")[0] for p in c["paths"]])
    counts = dict(zip(*np.unique(names, return_counts=True)))
    single = np.flatnonzero([counts[n] == 1 for n in names])
    in_cohort = np.random.default_rng(0).choice(single, 3000, replace=False)  # as dlib_cards.py drew it
    cohort = CohortNorm(top_fraction=0.6).fit(np.load(EXTRAS_DIR / "dlib-cohort.npy").astype(np.float32))
    g = Gallery(path, model, scoring="snorm", cohort=cohort)
    several = sorted(n for n, k in counts.items() if k >= 2)
    rows = {n: np.flatnonzero(names == n) for n in several}
    g.enroll_many({n: z[r[:-1], None, None, :] for n, r in rows.items()}, force=True)
    strangers = np.setdiff1d(single, in_cohort)
    probes = np.concatenate([z[[r[-1] for r in rows.values()]], z[strangers]])
    return g, probes, len(rows), (f"LFW's dlib codes (flip-averaged) of the {len(rows):,} people with 2+ images, "
                                  f"all but their last image, against the dlib card's cohort of 3,000 LFW people")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--per-person", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--cohort", type=int, default=3000, help="outside people in the cohort (dlib's carries 3,000)")
    parser.add_argument("--probes", type=int, default=400, help="probes (half known, half strangers)")
    parser.add_argument("--lfw", default=None, help="instead of random people: LFW's dlib codes (runs/dlib_lfw/codes.npz)")
    parser.add_argument("--single", type=int, default=30, help="probes identified one at a time")
    parser.add_argument("--hnsw-below", type=int, default=5_000, help="EXACT_MAX_ITEMS for the HNSW run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(ROOT / "runs" / "gallery_scale"))
    parser.add_argument("--out", default=str(RESULTS / "search_scale_gallery"))
    args = parser.parse_args(argv)
    if not Path(args.out).with_suffix(".json").exists():
        parser.error(f"{Path(args.out).with_suffix('.json')} is missing: run benchmarks/gallery_scale.py first")
    sys.path.insert(0, str(ROOT))
    from facespace.people.gallery import gallery_index
    from facespace.people.gallery.gallery import Gallery
    from facespace.people.gallery.matching import match_codes

    load_start = os.getloadavg()
    path = Path(args.work) / "snorm.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".index"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    rng = np.random.default_rng(args.seed)
    model = CodeEncoder(args.dim)
    (g, probes, known, data), enrol_s = timed(lambda: lfw_gallery(path, model, args) if args.lfw else
                                              random_gallery(path, model, rng, args))
    _, one_s = timed(lambda: g.enroll("extra", faces_of(unit(rng.normal(size=(1, args.dim))), 5, rng)[0]
                                      [:, None, None, :], force=True))
    codes, person, names = g.codes()
    radius = max(float(dict(g.db.execute("SELECT key, value FROM meta")).get("reject_radius") or 0.0), 1e-6)
    options = dict(threshold=g.threshold, metric=g.metric, k=5, radius=radius, scoring="snorm", cohort=g.cohort())
    exact, scan_s = timed(lambda: match_codes(probes, codes, person, names, **options))
    scan_one = [timed(lambda: match_codes(p[None], codes, person, names, **options))[1] for p in probes[:3]]
    log("full scan", round(1e3 * scan_s / len(probes), 2), "ms/probe in a batch", np.round(scan_one, 3), "s one probe")
    out = {"data": data, "faces": g.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0], "people": len(g),
           "probes": {"known": known, "strangers": len(probes) - known},
           "bulk_enrol_s": round(enrol_s, 1), "enrol_one_person_s": round(one_s, 3),
           "calibration": dict(g.db.execute("SELECT key, value FROM meta WHERE key = 'calibration'")).get("calibration"),
           "scan_ms_per_probe": round(1e3 * scan_s / len(probes), 3),
           "scan_single_ms": round(1e3 * float(np.median(scan_one)), 1), "runs": []}
    out["runs"].append(measure(g, probes, known, exact, args))
    log("exact index", out["runs"][-1])
    g.close()
    gallery_index.EXACT_MAX_ITEMS = args.hnsw_below  # the same people through a graph, as at a million faces
    gallery_index.forget_held()
    Path(str(path) + ".index").unlink()
    g = Gallery(path, model)
    out["runs"].append(measure(g, probes, known, exact, args))
    log("hnsw index", out["runs"][-1])
    g.close()
    out.update(command=" ".join([Path(sys.executable).name, *sys.argv]), load=[load_start, os.getloadavg()],
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    results = json.loads(Path(args.out).with_suffix(".json").read_text())  # gallery_scale.py's, which the .md shows too
    label = "lfw" if args.lfw else "random" if args.faces == 100_000 else f"random, {args.faces / 1e6:g}M"
    results.setdefault("snorm", {})[label] = out  # one row per data set and size
    write(results, Path(args.out))


if __name__ == "__main__":
    main()

"""Near-duplicates with a learned threshold (`--max-distance auto`), pairs confirmed in pixel space:
precision and recall on sets with known copies, per model, against the codes alone and fixed thresholds.

The two sets (benchmarks/duplicate_sets.py) are built from LFW, from the people of one split (people
whose name's CRC-32 is odd: `--split test`, the reported numbers; even: `--split dev`, on which the
rule's constants in facespace/pipelines/duplicate_levels.py and the pixel stage's choices were
picked): (a) `--lfw-images` LFW photos with 10 % planted edited copies, indexed with `--crop none`;
(b) grey, tight-cropped studio-like portraits of 15 people with 9 byte-identical copies.

Models: raw pixels (pixels:32), a PCA (32 components, fitted on 2,000 other photos of the split's
people, whole image at 32x32), the built-in autoencoder faces-ae and the built-in identity model
faces-id. Per model and set: the pairs reported (every pair within a reported group) against the
planted pairs (an original and its copies), for `auto` at each level (the default, near, is what a
user gets with no option: candidates from the codes, confirmed by the files' 32x32 pixels,
facespace/pipelines/duplicate_confirm.py), for the codes alone at near, and for fixed cosine
thresholds; the time to learn the thresholds (mostly encoding the altered copies of 48 images: about
the same for any set) and to group, and an estimate for 10,000 images (learning + grouping scaled as
n^2, the exact index's cost); encoding the set is reported apart, per 10,000 images.

    .venv/bin/python benchmarks/duplicates.py [--split test|dev] [--models pixels:32 pca faces-ae faces-id]
        [--lfw-images 1000] [--json-only]

Writes benchmarks/results/duplicates.{json,md} (--split test; each run replaces its models' rows, and
the dev rows are quoted) or, with --split dev, the --dev-results file (runs/dup/ by default) and its
.md. Skips, with a message, when ../shared is missing.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from duplicate_sets import LFW, lfw_set, split_people, studio_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("pixels:32", "pca", "faces-ae", "faces-id")
FIXED = (1e-5, 1e-4, 1e-3, 0.0045, 0.01, 0.03)  # cosine thresholds compared (0.01: the README's old advice)


def machine() -> dict:
    import PIL
    import sklearn
    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "torch": torch.__version__,
            "pillow": PIL.__version__, "load_average": os.getloadavg()}


def pair_scores(groups: list[list[int]], index, truth: list[list[str]]) -> dict:
    """Precision and recall of the pairs within reported groups against the planted pairs."""
    def pairs(sets):
        return {tuple(sorted(p)) for g in sets for p in itertools.combinations(g, 2)}

    name = {int(i): Path(m["path"]).name for i, m in zip(index.ids, index.get_metadata(index.ids))}
    found = pairs([[name[i] for i in g] for g in groups])
    true = pairs(truth)
    hit = len(found & true)
    return {"reported_pairs": len(found), "true_pairs": len(true), "found": hit,
            "precision": hit / len(found) if found else 1.0, "recall": hit / len(true) if true else 1.0}


def fit_pca(photos: list[Path], path: Path):
    from facespace.data.images import load_images
    from facespace.models.pca import PCAAutoencoder
    from facespace.models.registry import save_model

    x = load_images([str(f) for f in photos], size=32, crop=None)
    save_model(PCAAutoencoder(code_size=32).fit(x), path)
    return str(path)


def run(args: argparse.Namespace) -> list[dict]:
    import dataclasses

    import torch

    from facespace.pipelines.duplicate_confirm import find_confirmed_duplicates
    from facespace.pipelines.duplicate_levels import LEVELS
    from facespace.pipelines.duplicate_threshold import learn_max_distance
    from facespace.pipelines.indexing import build_index
    from facespace.pipelines.retrieval import find_duplicates

    torch.set_num_threads(args.threads)
    people = split_people(args.split)
    seed = args.set_seed if args.set_seed is not None else (1 if args.split == "test" else 0)
    tmp = Path(tempfile.mkdtemp(prefix="dup_bench_"))
    os.environ["FACESPACE_CACHE"] = str(tmp / "cache")
    rows = []
    try:
        truth_a, rest = lfw_set(people, args.lfw_images, tmp / "a", seed)
        truth_b = studio_set(people, tmp / "b", seed)
        sets = {"a: LFW + altered copies": (tmp / "a", truth_a, "none"),
                "b: grey studio-like": (tmp / "b", truth_b, "recorded")}
        for spec in args.models:
            model = fit_pca(rest[:2000], tmp / "pca.safetensors") if spec == "pca" else spec
            for set_name, (folder, truth, crop) in sets.items():
                t0 = time.perf_counter()
                index = build_index(model, str(folder), crop=crop)
                t_encode = time.perf_counter() - t0
                n = len(index)
                row = {"model": spec, "set": set_name, "images": n, "planted_pairs": None, "crop": crop,
                       "command": " ".join([".venv/bin/python", *sys.argv]),
                       "encode_s_per_10k": round(t_encode / n * 1e4, 1)}
                t0 = time.perf_counter()
                learned = learn_max_distance(index, level="near", model=model, crop=crop, seed=args.seed)
                t1 = time.perf_counter()
                groups, check = find_confirmed_duplicates(index, learned)
                t_learn, t_group = t1 - t0, time.perf_counter() - t1
                for level in LEVELS:
                    at = dataclasses.replace(learned, level=level, max_distance=learned.thresholds[level])
                    found, check_at = (groups, check) if level == "near" else find_confirmed_duplicates(index, at)
                    score = pair_scores(found, index, truth)
                    row["planted_pairs"] = score["true_pairs"]
                    row[f"auto_{level}"] = {"max_distance": at.max_distance, "how": learned.how,
                                            "confirmed": at.confirmed, "candidate_distance": at.candidate_distance,
                                            "pixel_max_distance": at.pixel_max_distance,
                                            "candidates": check_at.candidates if check_at else None, **score}
                    # the codes alone at the level (the rule before the pixel stage)
                    row[f"codes_{level}"] = {"max_distance": at.max_distance,
                                             **pair_scores(find_duplicates(index, at.max_distance), index, truth)}
                # learning costs about the same for any set (SAMPLE images altered, <= 2,000 items searched);
                # grouping with the exact index grows as n^2: the 10k figure extrapolates it so
                row["auto_near"].update(learn_s=round(t_learn, 2), group_s=round(t_group, 3),
                                        seconds_per_10k=round(t_learn + t_group * (1e4 / n) ** 2, 1))
                row["distributions"] = {
                    "copies_q05_50_95": {a: np.quantile(d, [0.05, 0.5, 0.95]).round(6).tolist()
                                         for a, d in learned.copies.items()},
                    "distinct_q01_05_50": np.quantile(learned.distinct[np.isfinite(learned.distinct)],
                                                      [0.01, 0.05, 0.5]).round(6).tolist(),
                    "pixel_copies_q05_50_95": {a: np.quantile(d, [0.05, 0.5, 0.95]).round(6).tolist()
                                               for a, d in learned.pixel_copies.items()},
                    "pixel_distinct_q01_05_50": (np.quantile(learned.pixel_distinct[np.isfinite(
                        learned.pixel_distinct)], [0.01, 0.05, 0.5]).round(6).tolist() if learned.confirmed else []),
                    "pixel_thresholds": learned.pixel_thresholds,
                    "notes": learned.notes + ([learned.confirm_note] if learned.confirm_note else [])}
                if args.dump:
                    meta = index.get_metadata(index.ids)
                    np.savez(Path(args.dump) / f"{spec.replace(':', '')}_{set_name[0]}.npz",
                             codes=index.reconstruct(index.ids), names=np.array([Path(m["path"]).name for m in meta]),
                             truth=np.array(json.dumps(truth)), **{f"copy_{a}": d for a, d in learned.copies.items()},
                             **{f"pixel_copy_{a}": d for a, d in learned.pixel_copies.items()},
                             pixel_distinct=learned.pixel_distinct, distinct=learned.distinct)
                for t in FIXED:
                    row[f"fixed_{t:g}"] = pair_scores(find_duplicates(index, t), index, truth)
                rows.append(row)
                near, codes = row["auto_near"], row["codes_near"]
                print(f"{spec:10s} {set_name:26s} n={n} auto(near)={near['max_distance']:.4g} "
                      f"cand={near['candidate_distance']:.4g} pixel={near['pixel_max_distance'] or float('nan'):.4g} "
                      f"P={near['precision']:.3f} R={near['recall']:.3f} "
                      f"(codes alone {codes['precision']:.3f}/{codes['recall']:.3f}) "
                      f"exact P/R={row['auto_exact']['precision']:.3f}/{row['auto_exact']['recall']:.3f} "
                      f"similar P/R={row['auto_similar']['precision']:.3f}/{row['auto_similar']['recall']:.3f}",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def pr(s: dict) -> str:
    return f"{s['precision']:.3f} / {s['recall']:.3f}"


def thresholds(a: dict) -> str:
    """The codes' threshold, and with the pixel stage the candidates' and the pixels' ones."""
    if not a.get("confirmed"):
        return f"{a['max_distance']:.3g} (codes alone)"
    return f"{a['candidate_distance']:.3g} -> px {a['pixel_max_distance']:.3g}"


def table(rows: list[dict]) -> str:
    def per_10k(r: dict) -> str:  # learning costs about the same for any set; exact grouping grows as n^2
        a = r["auto_near"]
        return f"{a['learn_s'] + a['group_s'] * (1e4 / r['images']) ** 2:.0f}" if r["images"] >= 1000 else "-"

    head = ("| model | set | images | planted pairs | auto (near, the default): candidates -> pixels | precision / recall "
            "| codes alone (near) | auto exact | auto similar | " + " | ".join(f"fixed {t:g}" for t in FIXED)
            + " | learn s | group s | auto for 10k images, s (est.) | encode, s per 10k images |")
    lines = [head, "|" + "---|" * (13 + len(FIXED))]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['set']} | {r['images']} | {r['planted_pairs']} | {thresholds(r['auto_near'])} "
            f"| **{pr(r['auto_near'])}** | {pr(r['codes_near'])} (t {r['codes_near']['max_distance']:.3g}) "
            f"| {pr(r['auto_exact'])} | {pr(r['auto_similar'])} | "
            + " | ".join(pr(r[f"fixed_{t:g}"]) for t in FIXED)
            + f" | {r['auto_near']['learn_s']:.1f} | {r['auto_near']['group_s']:.3f} | {per_10k(r)} "
              f"| {r['encode_s_per_10k']:.0f} |")
    return "\n".join(lines)


def meets(r: dict) -> bool:
    return r["auto_near"]["precision"] >= 0.95 and r["auto_near"]["recall"] >= 0.95


def best_fixed(r: dict) -> str:
    """The fixed threshold of the table with the best min(precision, recall)."""
    t = max(FIXED, key=lambda t: min(r[f"fixed_{t:g}"]["precision"], r[f"fixed_{t:g}"]["recall"]))
    s = r[f"fixed_{t:g}"]
    return f"{t:g} ({s['precision']:.3f} / {s['recall']:.3f})"


def write(rows: list[dict], args: argparse.Namespace) -> None:
    """Merge `rows` into the results JSON (replacing those of the same models) and render the .md."""
    from facespace.files import write_text_atomic

    name = "duplicates" if args.split == "test" else "duplicates_dev"
    path = RESULTS / f"{name}.json" if args.split == "test" else Path(args.dev_results)
    old = json.loads(path.read_text()) if path.exists() else {}
    done = {r["model"] for r in rows}
    rows = [r for r in old.get("rows", []) if r["model"] not in done] + rows
    rows.sort(key=lambda r: (MODELS.index(r["model"]) if r["model"] in MODELS else 99, r["set"]))
    info = {"benchmark": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "split": args.split, "rows": rows} if done else old
    dev = Path(args.dev_results)
    if args.split == "test" and dev.exists():  # where the rule's constants were checked
        info["dev"] = [{k: r[k] for k in ("model", "set", "images", "planted_pairs", "command", "auto_near",
                                          "codes_near", "auto_exact", "auto_similar") if k in r}
                       for r in json.loads(dev.read_text())["rows"]]
    write_text_atomic(path, json.dumps(info, indent=2, default=str))
    write_text_atomic(path.with_suffix(".md"), render(info))


# the test split's history: every configuration scored on it, in order (the last two are this table)
SCORED = (
    "the largest-jump nearest-distinct estimate (pixels a recall 0.75, faces-id a 0.82, PCA b precision 0.82)",
    "the reach-aware codes-alone rule (6 of 8 rows; its numbers are this run's 'codes alone' column)",
    "candidates from the codes one level looser, confirmed in pixel space (this table)",
    "the same rule with faces-ae retrained (90 epochs, 2026-12-06): its two rows measured again, nothing chosen "
    "(the faces-ae rows of this table; the other models' rows are from configuration 3)",
)
# why the codes alone (configuration 2) missed on the test split, examined after that run
CODES_FINDINGS = (
    "The codes alone missed two rows: (1) PCA, set b: two pairs of different photos of one person (Edmund "
    "Stoiber 3 and 8, Saddam Hussein 5 and 11) lie 0.018 apart, nearer than PCA's +-10 % brightness copies reach "
    "(up to 0.056), and each pair is isolated, so the nearest-distinct estimate takes them for copies. (2) "
    "faces-ae, set a: on whole 250x250 photos at 32 px, 1 % of the photos have a distinct photo within 0.019 (the "
    "threshold is capped at 0.7 x that), while its 2 % crops and +-10 % brightness copies reach 0.048-0.051. Raw "
    "pixels at 32 px tell both apart, which is what the pixel stage uses."
)
# what this configuration's test rows show, examined after the run (nothing was changed after it)
FINDINGS = (
    "Examined after this run: the pixel stage drops one planted pair that the codes alone kept, with faces-id on "
    "set a (recall 1.000 -> 0.992): a 0-2 % edge cut (Martin McCauley 2, cut to 240x243) lies 0.0265 from its "
    "original in 32x32 pixels of the whole photo, just past the pixel threshold 0.025; raw pixels alone miss the "
    "same pair. The 20-epoch faces-ae on set a missed 2 pairs (0.983): they were not among its candidates (its "
    "codes' similar threshold, 0.0275, reached 0.983 of the planted pairs); the 90-epoch faces-ae (configuration 4) "
    "misses 1 (0.992, threshold 0.0283), and its codes alone on set b report one pair of distinct photos (precision "
    "0.900) that the pixel stage removes; its times ran on a quiet machine with 2 threads. The times are not comparable with the codes-alone "
    "run's: the load average was 10-11 on the 2 cores (5 then) and encoding ran 2-3x slower; on top of it the pixel "
    "stage reads the 576 copies and up to 2,000 nearest distinct pairs again at 32 px when learning, and the "
    "candidates' files when grouping."
)
PLAN = (
    "a second stage (facespace/pipelines/duplicate_confirm.py): the pairs within "
    "the codes' learned threshold of the next looser level (near -> similar, exact -> near; similar keeps "
    "similar) are candidates; each is kept when the cosine distance between 32x32 pixel codes of its two files "
    "(read and cut as the index's codes were) is within a pixel threshold placed by the same `choose_thresholds` "
    "(same constants) on the pixel distances of the same 48 x 12 altered copies and of each sampled item and its "
    "nearest distinct item by the model. Pairs whose files cannot be read are judged by the codes alone. Dev "
    "first (the stage's choices could be changed only there; none was), then the test split once for all four "
    "models, with the codes-alone numbers of the same run beside them. Target: precision and recall >= 0.95 at "
    "the default level on all 8 model/set rows."
)


def render(info: dict) -> str:
    rows, split = info["rows"], info["split"]
    m = info["machine"]
    missed = [r for r in rows if not meets(r)]
    notes = (
        f"`facespace index duplicates` with no option (`--max-distance auto`, level near, pairs confirmed in pixel "
        f"space) on two sets with planted copies, split `{split}` (LFW people whose name's CRC-32 is "
        f"{'odd' if split == 'test' else 'even'}; see benchmarks/duplicate_sets.py for how the sets are made). Each "
        "cell is precision / recall of the pairs reported (every pair within a group) against the planted pairs. "
        "The rule's constants (facespace/pipelines/duplicate_levels.py) were picked on `--split dev` (the "
        "other half of LFW's people, other photos; its numbers are at the end), not on these sets. Set (a) is "
        "indexed with `--crop none` (the whole photo, so that resized copies are cut alike), set (b) with each "
        "model's own crop (its 120x120 files are used whole). 'candidates -> pixels': the codes' threshold of the "
        "candidates (level similar) and the pixel threshold (level near); 'codes alone': the codes' near threshold "
        "without the pixel stage. Fixed thresholds are cosine distances between codes, unconfirmed; 0.01 is what "
        "the README advised before. Times: wall clock on a shared 2-core machine, one torch thread; learning "
        "encodes 48 images and their 576 altered copies (and reads them, and up to 2,000 nearest distinct pairs, "
        "as pixels) whatever the set's size; grouping includes reading the candidates' files as pixels; the 10k "
        "estimate (set a only) is learn + group x (10,000 / n)^2.\n\n"
        f"**Target** (issue 28: precision and recall >= 0.95 with no option): met for "
        f"{len(rows) - len(missed)} of {len(rows)} model/set rows"
        + (". Not met: " + "; ".join(
            f"{r['model']} on set {r['set'][:1]} (auto {pr(r['auto_near'])}; the best fixed threshold of the "
            f"table: {best_fixed(r)})" for r in missed) if missed else "") + "."
        + (f"\n\n**Configurations scored on the test split: {len(SCORED)}** (the last two are this table): "
           + "; ".join(f"({i}) {c}" for i, c in enumerate(SCORED, 1)) + f". {CODES_FINDINGS}\n\n{FINDINGS}"
           if split == "test" else "")
    )
    commands = sorted({r.get("command", "") for r in rows})
    md = (f"# Near-duplicates: a threshold learned from the set, pairs confirmed in pixel space\n\n"
          f"**Plan** (committed before the test split was scored): {PLAN}\n\n{notes}\n\n"
          f"{table(rows)}\n\n"
          f"- date: {info['date']}\n- commands: " + "; ".join(f"`{c}`" for c in commands) + "\n"
          f"- machine: {m['cpu_count']} CPUs, {m['platform']}, load average at the end {m['load_average']} "
          f"(other work ran beside it)\n"
          f"- versions: python {m['python']}, numpy {m['numpy']}, scikit-learn {m['scikit-learn']}, "
          f"torch {m['torch']}, Pillow {m['pillow']}\n")
    if info.get("dev"):
        dev_commands = sorted({r.get("command", "") for r in info["dev"]})
        md += ("\n## The development split (where the rule's constants were checked)\n\n"
               "Other LFW people (even CRC-32), other photos, seed 0: "
               + "; ".join(f"`{c}`" for c in dev_commands) + ".\n\n"
               "| model | set | images | planted pairs | auto near: candidates -> pixels | precision / recall "
               "| codes alone (near) | auto exact | auto similar |\n|---|---|---|---|---|---|---|---|---|\n"
               + "\n".join(f"| {r['model']} | {r['set']} | {r['images']} | {r['planted_pairs']} "
                           f"| {thresholds(r['auto_near'])} | {pr(r['auto_near'])} "
                           f"| {pr(r['codes_near']) if 'codes_near' in r else '-'} | {pr(r['auto_exact'])} "
                           f"| {pr(r['auto_similar'])} |" for r in info["dev"]) + "\n")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("test", "dev"), default="test")
    ap.add_argument("--models", nargs="+", default=list(MODELS), help=f"of {', '.join(MODELS)}")
    ap.add_argument("--lfw-images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="the sample of images the threshold is learned from")
    ap.add_argument("--set-seed", type=int, help="the seed the sets are drawn with (default: 1 for test, 0 for dev)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dump", help="a folder to keep each set's codes, truth and copy distances in (npz)")
    ap.add_argument("--dev-results", default=str(ROOT / "runs" / "dup" / "duplicates_dev.json"),
                    help="--split dev writes its rows here (not under benchmarks/results); --split test quotes them")
    ap.add_argument("--json-only", action="store_true", help="print the rows, write nothing")
    ap.add_argument("--render", action="store_true", help="run nothing: render the .md again from the JSON")
    args = ap.parse_args()
    if not LFW.is_dir():
        print(f"skipped: needs the LFW photos at {LFW} (../shared/data)", file=sys.stderr)
        return
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; expected some of {', '.join(MODELS)}")
    if args.render:
        write([], args)
        return
    rows = run(args)
    if args.json_only:
        print(json.dumps(rows, indent=2, default=str))
    else:
        write(rows, args)


if __name__ == "__main__":
    main()

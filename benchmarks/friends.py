"""The book's "your friends" case: a gallery of 15 people enrolled from 2 whole-frame photos each.

15 LFW people with at least 12 photos (seeded choice) are enrolled from 2 whole-frame 250x250
photos each through `--detect` (the surest face of each photo); up to 10 other photos of each are
the known probes (other days, lighting, glasses, expressions), and 150 photos of 150 other people
are strangers (people with two or more photos: dlib's S-norm cohort holds people with one). A gallery this small cannot calibrate its stranger threshold on itself with any
confidence; a model that records its impostor distances (dlib: measured on LFW) lends the gallery
its threshold, and the table says which threshold each gallery used.

Reported per model: known probes named right / called unknown / named wrong; strangers named.

    .venv/bin/python benchmarks/friends.py [--models faces-id dlib]

Writes benchmarks/results/friends.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, machine  # noqa: E402


def lfw_files() -> dict[str, list[Path]]:
    """Deep-funneled LFW: person -> that person's photos, sorted."""
    root = LFW / "lfw-deepfunneled"
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}


def friends_set(files: dict[str, list[Path]], seed: int = 0):
    """`(friends, enrol, probes, strangers)`: 15 people with 12+ photos, 2 enrolment photos each
    (`{name: [path, path]}`), up to 10 other photos of each (`[(name, path)]`), and one photo each of
    150 other people with 2+ photos (`[path]`)."""
    rng = np.random.default_rng(seed)
    many = [n for n, f in files.items() if len(f) >= 12]
    friends = [many[i] for i in rng.permutation(len(many))[:15]]
    # strangers from people with 2+ photos: dlib's S-norm cohort holds LFW people with one photo, and a
    # stranger inside the cohort would be measured against itself
    others = [n for n in files if n not in friends and len(files[n]) >= 2]
    strangers = [files[others[i]][0] for i in rng.permutation(len(others))[:150]]
    enrol = {n: [files[n][i] for i in rng.permutation(len(files[n]))[:2]] for n in friends}
    probes = [(n, f) for n in friends for f in [g for g in files[n] if g not in enrol[n]][:10]]
    return friends, enrol, probes, strangers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["faces-id", "dlib"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from facespace.models.registry import load_model
    from facespace.people.gallery.gallery import Gallery
    from facespace.photos.faces import model_crops

    friends, enrol, probes, strangers = friends_set(lfw_files(), args.seed)
    rows = []
    for name in args.models:
        model = load_model(name)
        g = Gallery(":memory:", model)
        for person, photos in enrol.items():
            crops = model_crops(model, photos, detect=True, max_faces=1)
            g.enroll(person, crops.images, force=True)
        facts = json.loads(g.meta.get("calibration") or "{}")
        known = model_crops(model, [f for _, f in probes], detect=True, max_faces=1)
        truth = {str(f): n for n, f in probes}
        answers = g.identify(known.images)
        named = [a.name for a in answers]
        right = sum(a == truth[s] for a, s in zip(named, known.sources))
        unknown = sum(a is None for a in named)
        wrong = len(named) - right - unknown
        missed = len(probes) - len(known)  # no face found: counts as unknown
        s_crops = model_crops(model, strangers, detect=True, max_faces=1)
        s_named = sum(a.name is not None for a in g.identify(s_crops.images))
        rows.append({"model": name, "known_probes": len(probes), "named_right": right, "unknown": unknown + missed,
                     "named_wrong": wrong, "strangers": len(strangers), "strangers_named": s_named,
                     "threshold": g.threshold, "threshold_from": facts.get("source", "gallery"), "scoring": g.scoring})
        print(rows[-1], file=sys.stderr, flush=True)
    out = {"command": "python " + " ".join(sys.argv), "machine": machine(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"), "friends": friends, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "friends.json").write_text(json.dumps(out, indent=2, default=float))
    lines = ["# Your friends: 15 people, 2 whole-frame photos each", "",
             f"Command: `{out['command']}`; {out['machine']['platform']}, {out['machine']['cpu_count']} cores, load "
             f"{out['machine']['load_average']}.", "",
             f"15 LFW people with >= 12 photos (seed {args.seed}), enrolled from 2 whole 250x250 photos each through "
             "--detect; up to 10 other photos of each as probes; 150 photos of 150 other people (with 2+ photos, so never "
             "in dlib's cohort) as strangers.", "",
             "| model | known named right | unknown | named wrong | strangers named | threshold (from) | scoring |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['named_right']} / {r['known_probes']} | {r['unknown']} | {r['named_wrong']} | "
                     f"{r['strangers_named']} / {r['strangers']} | {r['threshold']:.4f} ({r['threshold_from']}) | {r['scoring']} |")
    (RESULTS / "friends.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

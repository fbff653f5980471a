"""The default identity model's recipe retrained without the people it is then measured on.

faces-id saw every LFW person with two or more photos, so its numbers on those people are not test
numbers. This benchmark holds out
- the grey-portrait set: 40 people with 10+ photos (seeded), 20 enrolled from 5 photos each, 5 other
  photos of each as known probes (100), 5 photos of each of the 20 others as strangers (100), every
  photo turned grey and cut tight to 92x112 (the AT&T portraits' size, eyes to chin) and saved as PGM;
- the friends set of `friends.py` (15 people, 2 whole-frame enrolment photos each, 150 strangers);
trains faces-id's seven-member recipe (`builtin_models.py`) and a PCA-32 on everyone else, and
measures, through the Python API with no option given (`Gallery.enroll_many` / `identify` on the
files, the gallery's own threshold): named right / unknown / wrong and strangers named, for the
copy, the PCA and dlib (outside data, for reference).

It also measures the impostor record faces-id ships for galleries too small to calibrate
themselves: distances between LFW people with one photo, whom no faces-id member trains on (the
verifier trains on people with two or more photos), so the shipped model never saw them.

    .venv/bin/python benchmarks/heldout_identity.py --train      # the copy and the PCA (~45 min, 2 cores)
    .venv/bin/python benchmarks/heldout_identity.py --measure    # writes benchmarks/results/heldout_identity.{json,md}

Setting: LFW deep-funneled; the copy and the PCA are "unrestricted, labelled outside data: none"
(trained on other LFW people's labels); dlib's model is trained on outside data.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builtin_models import FACESPACE, run, train_faces_id  # noqa: E402
from friends import friends_set, lfw_files  # noqa: E402
from verification import RESULTS, ROOT, machine  # noqa: E402

RUNS = ROOT / "runs" / "heldout"
GREY_BOX = (79, 69, 171, 181)  # left, top, right, bottom in a 250x250 deep-funneled photo: 92 wide, 112 high


def portrait_people(files: dict[str, list[Path]], exclude: set[str], seed: int = 1) -> tuple[list[str], list[str]]:
    """`(enrolled, strangers)`: 20 and 20 people with 10+ photos, none in `exclude`."""
    many = [n for n, f in files.items() if len(f) >= 10 and n not in exclude]
    pick = [many[i] for i in np.random.default_rng(seed).permutation(len(many))[:40]]
    return pick[:20], pick[20:]


def held_out(files: dict[str, list[Path]], seed: int = 0) -> dict:
    friends, enrol, probes, strangers = friends_set(files, seed)
    friend_people = set(friends) | {Path(s).parent.name for s in strangers}
    enrolled, unknown = portrait_people(files, friend_people)
    return {"friends": (friends, enrol, probes, strangers), "portraits": (enrolled, unknown),
            "people": sorted(friend_people | set(enrolled) | set(unknown))}


def training_folder(files: dict[str, list[Path]], people_out: list[str]) -> Path:
    """A `<person>/<image>` folder of links to every LFW person but `people_out`."""
    root = RUNS / "data" / "lfw-deepfunneled"
    root.mkdir(parents=True, exist_ok=True)
    out = set(people_out)
    for name, photos in files.items():
        link = root / name
        if name in out:
            if link.is_symlink():
                link.unlink()
        elif not link.exists():
            link.symlink_to(photos[0].parent.resolve(), target_is_directory=True)
    return root


def train(files: dict[str, list[Path]], lanes: int, augment: str | None = None) -> None:
    h = held_out(files)
    root = training_folder(files, h["people"])
    (RUNS / "held_out_people.json").write_text(json.dumps(h["people"], indent=1))
    print(f"{len(h['people'])} people held out; training on {sum(1 for _ in root.iterdir())} people in {root}", flush=True)
    pca = RUNS / "pca-32"
    if not (pca / "run.json").exists():
        run([*FACESPACE, "train", "pca", "--code-size", "32", "--data", str(root), "--test", "0.02", "--out", str(pca),
             "--overwrite"], RUNS / "pca.log")
    folder = "faces-id" if augment is None else "faces-id-augment"
    member_args = () if augment is None else ("--augment", augment)
    ens, commands, seconds = train_faces_id(argparse.Namespace(runs=RUNS, data=root.parent, lanes=lanes, folder=folder,
                                                               member_args=member_args))
    (RUNS / folder / "recipe.json").write_text(json.dumps({"commands": commands, "seconds": seconds}, indent=1))
    print(f"copy written to {ens} in {seconds:.0f} s", flush=True)


def grey_portraits(files: dict[str, list[Path]], enrolled: list[str], strangers: list[str], seed: int = 1):
    """Write the grey 92x112 PGM portraits; `(enrol {name: [path]*5}, probes [(name, path)], strangers [path])`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = RUNS / "grey"
    root.mkdir(parents=True, exist_ok=True)

    def portraits(name: str, n: int) -> list[str]:
        out = []
        for i in sorted(rng.permutation(len(files[name]))[:n]):
            path = root / f"{files[name][i].stem}.pgm"
            if not path.exists():
                Image.open(files[name][i]).convert("L").crop(GREY_BOX).save(path)
            out.append(str(path))
        return out

    enrol, probes = {}, []
    for name in enrolled:
        ten = portraits(name, 10)
        enrol[name] = ten[:5]
        probes += [(name, p) for p in ten[5:]]
    return enrol, probes, [p for name in strangers for p in portraits(name, 5)]


def score_gallery(model, enrol: dict, probes: list, strangers: list, *, detect: bool = False) -> dict:
    """Enrol and identify through `Gallery` as a user would (no options; `detect` for whole frames):
    counts of known probes named right / unknown / wrong and of strangers named, at the gallery's threshold."""
    from facespace.people.gallery.gallery import Gallery
    from facespace.people.quality import LowQualityError
    from facespace.photos.faces import model_crops

    def faces(paths):
        if not detect:
            return [str(p) for p in paths], len(paths)
        crops = model_crops(model, paths, detect=True, max_faces=1)
        return crops.images, len(crops)

    g = Gallery(":memory:", model)
    people = {name: faces(paths)[0] for name, paths in enrol.items()}
    refused = None
    try:
        g.enroll_many(people)
    except LowQualityError as e:  # counted, then enrolled anyway so that identification can be measured
        refused = str(e).splitlines()[0]
        g.enroll_many(people, force=True)
    facts = json.loads(g.meta.get("calibration") or "{}")
    images, found = faces([p for _, p in probes])
    answers = [a.name for a in g.identify(images)]
    truth = [n for n, _ in probes] if not detect else None
    if detect:  # crops keep their sources: match answers to the probes that had a face
        crops = model_crops(model, [p for _, p in probes], detect=True, max_faces=1)
        who = {str(p): n for n, p in probes}
        truth = [who[str(s)] for s in crops.sources]
    right = sum(a == t for a, t in zip(answers, truth))
    unknown = sum(a is None for a in answers) + len(probes) - found
    s_images, _ = faces(strangers)
    s_named = sum(a.name is not None for a in g.identify(s_images))
    return {"known_probes": len(probes), "named_right": right, "unknown": unknown,
            "named_wrong": len(probes) - right - unknown, "strangers": len(strangers), "strangers_named": s_named,
            "threshold": g.threshold, "threshold_from": facts.get("source", "gallery"), "scoring": g.scoring,
            "quality_gate": refused or "every enrolment image passed"}


def faces_id_impostors(model, files: dict[str, list[Path]], n_people: int = 3000, seed: int = 0) -> dict:
    """The impostor record faces-id ships: cosine distances between photos of LFW people with one
    photo (no faces-id member trains on them), every pair of `n_people` of them."""
    from facespace.people.thresholds import impostor_record
    from facespace.pipelines.codes import encode

    singles = [f[0] for f in files.values() if len(f) == 1]
    pick = [str(singles[i]) for i in np.random.default_rng(seed).permutation(len(singles))[:n_people]]
    z = encode(model, pick)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    d = 1.0 - z @ z.T
    d = d[np.triu_indices(len(z), 1)]
    return impostor_record(d, source=f"LFW: every pair of {len(z)} people with one photo (no faces-id member "
                                      "trains on people with one photo)")


PLAN = """Plan, written before any held-out set was scored (each configuration below is scored once):
- grey portraits and friends, each with four configurations: the faces-id recipe retrained without
  the held-out people, as the card ships today (the gallery calibrates itself, or lends nothing);
  the same with the impostor record measured on LFW people with one photo (what the card will ship
  if it names more friends without naming more strangers); PCA-32 without the held-out people; dlib.
- targets (issue 24): grey portraits >= 85/100 named at <= 3/100 strangers named for the default
  identity model, with no option given; friends: most of 150 named.
- the impostor record ships in faces-id's card only if, on the friends set, strangers named stay
  <= 3/150; otherwise the card stays as it is.
Outcome of round 1: the record names 112/150 strangers among friends and 100/100 on grey portraits
(LFW files' distances are far from those of detected or grey faces), so it does not ship.

Plan 2, written after round 1 and before scoring it: grey portraits collapse the copy's distances
(exploratory, on the grey set's own images: rank-1 0.74 in grey against 0.84 for the same crops in
colour; genuine median distance 0.18 against 0.21 for strangers' nearest), and a face crop given
whole was blown up to faces-id's wide box. Two changes, each scored once on the grey set: (a) the
framing fix (`data.images.face_frame`) with the same copy; (b) the recipe's members trained with
grey copies (`--augment grey=0.25`) without the held-out people, then on both sets. Whatever (b)
scores, faces-id is retrained with it only if it beats (a) on the grey set without losing friends."""


MODELS = ("faces-id recipe without these people", "the same + impostor record (one-photo people)",
          "PCA-32 without these people", "dlib (outside data)",
          "faces-id recipe + grey copies (--augment grey=0.25), without these people")
SETS = ("grey 92x112 portraits", "friends, whole frames (--detect)")


_RECORD: dict = {}


def model_named(label: str, files: dict[str, list[Path]]):
    """The model a row label names (MODELS); the impostor record is measured once per process."""
    import copy as copying

    from facespace.models.registry import load_model

    if label == MODELS[3]:
        return load_model("dlib")
    if label == MODELS[2]:
        return load_model(str(RUNS / "pca-32" / "best.safetensors"))
    if label == MODELS[4]:
        return load_model(str(RUNS / "faces-id-augment" / "ensemble.safetensors"))
    copy = load_model(str(RUNS / "faces-id" / "ensemble.safetensors"))
    if label == MODELS[0]:
        return copy
    if "cosine" not in _RECORD:
        _RECORD["cosine"] = faces_id_impostors(copy, files)
    with_record = copying.copy(copy)
    info = dict(copy.checkpoint_info or {})
    with_record.checkpoint_info = {**info, "extra": {**(info.get("extra") or {}), "impostors": dict(_RECORD)}}
    return with_record


def measure(files: dict[str, list[Path]], models: list[str], sets: list[str], note: str) -> None:
    """Score `models` on `sets` (names from MODELS and SETS); rows are added to the results file,
    whose earlier rows stay (each with its date and note): every configuration scored is counted."""
    h = held_out(files)
    enrol, probes, strangers = grey_portraits(files, *h["portraits"])
    _, f_enrol, f_probes, f_strangers = h["friends"]
    cases = {SETS[0]: ((enrol, probes, strangers), False), SETS[1]: ((f_enrol, f_probes, f_strangers), True)}
    path = RESULTS / "heldout_identity.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    rows = old.get("rows", [])
    date = datetime.datetime.now().isoformat(timespec="seconds")
    for label in models:
        model = model_named(label, files)
        for case in sets:
            args, detect = cases[case]
            row = {"model": label, "set": case, **score_gallery(model, *args, detect=detect), "date": date, "note": note}
            rows.append(row)
            print(json.dumps(row, default=float), file=sys.stderr, flush=True)
    write(rows, _RECORD.get("cosine") or old.get("faces_id_impostor_record"), h, old.get("colour_pairs"))


def gate(text: str) -> str:
    """The quality gate's verdict on the enrolment images, short."""
    n = text.split(" image(s) refused")[0]
    return f"{n} refused, then enrolled with force" if n.isdigit() else text


def write(rows: list[dict], record: dict, h: dict, pairs: list[dict] | None = None) -> None:
    out = {"command": "python " + " ".join(sys.argv), "machine": machine(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"), "plan": PLAN,
           "held_out_people": h["people"],
           "configurations_scored": {c: sum(r["set"] == c for r in rows) for c in SETS},
           "faces_id_impostor_record": record, "rows": rows, "colour_pairs": pairs or []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "heldout_identity.json").write_text(json.dumps(out, indent=2, default=float))
    m = out["machine"]
    lines = ["# Identity on people the model never saw: grey portraits and friends", "",
             f"Command: `{out['command']}`; {m['platform']}, {m['cpu_count']} cores, load {m['load_average']}; "
             f"{out['date']}.", "",
             f"{len(h['people'])} LFW people held out of training (the sets below); the faces-id recipe "
             "(`builtin_models.py`'s seven members) and a PCA-32 trained on all the others. Setting: LFW "
             "deep-funneled, unrestricted with labelled outside data for dlib only; the copy and the PCA use "
             "LFW labels of other people. Every count at the gallery's own threshold, through the Python API "
             "with no option given.", "",
             "- grey portraits: 20 people enrolled with 5 grey 92x112 tight portraits each, 5 other portraits "
             "of each as probes (100), 5 portraits of each of 20 other people as strangers (100)",
             "- friends: `friends.py`'s set: 15 people enrolled from 2 whole 250x250 photos each through "
             "detection, up to 10 other photos of each (150), 150 photos of 150 other people", "",
             PLAN, "",
             "**Configurations scored:** " + ", ".join(f"{n} on the {c} set" for c, n in out["configurations_scored"].items())
             + " (every row below, in the order scored).", "",
             "| model | set | known named right | unknown | named wrong | strangers named | threshold (from) | scoring | quality gate | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['set']} | {r['named_right']} / {r['known_probes']} | {r['unknown']} | "
                     f"{r['named_wrong']} | {r['strangers_named']} / {r['strangers']} | {r['threshold']:.4f} "
                     f"({r['threshold_from']}) | {r['scoring']} | {gate(r['quality_gate'])} | {r.get('note', '')} |")
    if pairs:
        lines += ["", "Colour verification on the held-out people's LFW photos (each model's own crop; genuine and "
                  "impostor pairs in equal numbers; oracle accuracy = at the best threshold for these pairs, a "
                  "comparison, not a result):", "", "| model | pairs | AUC | oracle accuracy | at distance |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['pairs']:,} | {r['auc']:.4f} | {r['oracle_accuracy']:.4f} | "
                  f"{r.get('oracle_threshold', float('nan')):.4f} |" for r in pairs]
    (RESULTS / "heldout_identity.md").write_text("\n".join(lines) + "\n")


def colour_pairs(files: dict[str, list[Path]], labels: list[str], n: int = 3000, seed: int = 0) -> list[dict]:
    """Verification on LFW photos (colour, each model's own crop) of the held-out people: every
    model in `labels` on the same `n` genuine and `n` impostor pairs; AUC and the accuracy at the
    best threshold (an oracle: the same pairs choose it). Whether a recipe change costs colour faces."""
    from sklearn.metrics import roc_auc_score

    h = held_out(files)
    photos = [(name, str(f)) for name in h["people"] for f in files[name]]
    who = np.array([n for n, _ in photos])
    rng = np.random.default_rng(seed)
    same = [(i, j) for i in range(len(photos)) for j in range(i + 1, len(photos)) if who[i] == who[j]]
    same = [same[k] for k in rng.permutation(len(same))[:n]]
    other = []
    while len(other) < n:
        i, j = rng.integers(0, len(photos), 2)
        if who[i] != who[j]:
            other.append((int(i), int(j)))
    pairs = np.array(same + other)
    truth = np.r_[np.ones(len(same)), np.zeros(len(other))]
    from facespace.pipelines.codes import encode

    rows = []
    for label in labels:
        model = model_named(label, files)
        z = encode(model, [p for _, p in photos])
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        d = 1.0 - (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(1)
        order = np.sort(d)
        acc, best = max((((d <= t) == truth).mean(), t) for t in order[:: max(1, len(order) // 2000)])
        rows.append({"model": label, "pairs": len(pairs), "auc": float(roc_auc_score(truth, -d)),
                     "oracle_accuracy": float(acc), "oracle_threshold": float(best)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def ship_record(files: dict[str, list[Path]]) -> None:
    """Write the shipped faces-id's own impostor record (one-photo LFW people, whom it never saw) into
    its card, `extra.impostors.cosine`; the weights and their fingerprint are untouched."""
    from facespace.models.registry import load_model

    card_path = ROOT / "facespace" / "models" / "builtin" / "faces-id.json"
    record = faces_id_impostors(load_model("faces-id"), files)
    card = json.loads(card_path.read_text())
    card["extra"] = {**card.get("extra", {}), "impostors": {"cosine": record}}
    card["impostor_record"] = (
        "a gallery too small to calibrate itself takes its stranger threshold from these distances; the same "
        "record measured with the recipe retrained without the friends set's people names friends as in "
        "benchmarks/results/heldout_identity.md (python benchmarks/heldout_identity.py --ship-record)")
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(f"faces-id's card: impostor record of {record['pairs']:,} pairs written to {card_path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", action="store_true", help="train the copy of faces-id and the PCA without the held-out people")
    ap.add_argument("--measure", action="store_true", help="measure the copy, the PCA and dlib on the held-out people")
    ap.add_argument("--ship-record", action="store_true", help="write the shipped faces-id's impostor record into its card")
    ap.add_argument("--models", nargs="*", choices=MODELS, help="which to score (default: all)")
    ap.add_argument("--sets", nargs="*", choices=SETS, help="which sets (default: both)")
    ap.add_argument("--colour-pairs", action="store_true",
                    help="compare the two copies on colour pairs of the held-out people (results file's last table)")
    ap.add_argument("--note", default="", help="what changed since the rows already scored")
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--member-augment", help="train the copy's members with this --augment (into faces-id-augment/)")
    args = ap.parse_args()
    files = lfw_files()
    if args.train:
        train(files, args.lanes, args.member_augment)
    if args.measure:
        measure(files, args.models or list(MODELS), args.sets or list(SETS), args.note)
    if args.colour_pairs:
        path = RESULTS / "heldout_identity.json"
        old = json.loads(path.read_text())
        write(old["rows"], old.get("faces_id_impostor_record"), held_out(files),
              colour_pairs(files, [MODELS[0], MODELS[4]]))
    if args.ship_record:
        ship_record(files)


if __name__ == "__main__":
    main()

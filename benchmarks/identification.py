"""Open-set identification on LFW with the facespace gallery: who is this, or nobody I know?

Protocol (seeded): every person with >= 4 images is enrolled with 3 of them (610 people, 1,830
faces); their other images are the known probes. People with fewer than 4 images are split in two
halves by person: one half are the strangers (never enrolled; their images are stranger probes),
the other half is the only data PCA is fitted on. Checkpoints given with --models are used as they
are (trained elsewhere; each sees the images cut with the crop it recorded). --verifier-retrain CKPT
adds a verifier that never saw an enrolled person or a stranger: a fresh network with CKPT's settings
(network, objective, loop, crop) trained here on the PCA half only (its people with >= 2 images).
--train-people F keeps a share F of the people with >= 4 images out of the gallery and adds all their
images to that training half, so a retrained verifier learns from people with many images (fewer
people are then enrolled). The gallery is facespace's own (`Gallery(":memory:")`, `enroll_many`,
`identify`) with its stranger threshold calibrated from the enrolled people for FAR = 1%.

Reported: closed-set rank-1 (known probes, no threshold); DIR@FAR=1% (detection-and-identification
rate at the threshold that accepts 1% of the strangers, an oracle threshold, the standard open-set
figure); and at the gallery's own calibrated threshold: strangers wrongly accepted, and the share
of known probes named correctly.

    .venv/bin/python benchmarks/identification.py [--models runs/verifier/best.safetensors ...]
    .venv/bin/python benchmarks/identification.py --verifier-retrain runs/v48/best.safetensors

Writes benchmarks/results/identification.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, model_input, verifier_retrained, write_results  # noqa: E402


def split(faces, enrol: int, seed: int, train_people: float = 0.0):
    """`(gallery {name: rows}, known probe rows, stranger rows, training rows)`.

    `train_people`: the share of the people with more than `enrol` images who are kept out of the
    gallery and given, all their images, to training (a model learning identities needs people
    with many images; none of them is enrolled or a stranger)."""
    rng = np.random.default_rng(seed)
    counts = faces.counts()
    gallery, known = {}, []
    many = np.array(sorted(set(faces.names[counts >= enrol + 1].tolist())))
    held = set(rng.permutation(many)[: int(round(train_people * len(many)))].tolist()) if train_people else set()
    for name in many:
        rows = rng.permutation(np.flatnonzero(faces.names == name))
        if name in held:
            continue
        gallery[name] = rows[:enrol]
        known += rows[enrol:].tolist()
    few = np.array(sorted(set(faces.names[counts < enrol + 1].tolist())))
    strangers_people = set(rng.permutation(few)[: len(few) // 2].tolist())
    rest = np.flatnonzero(counts < enrol + 1)
    is_stranger = np.array([n in strangers_people for n in faces.names[rest]])
    held_rows = np.flatnonzero(np.isin(faces.names, list(held))) if held else np.zeros(0, np.int64)
    return gallery, np.array(known), rest[is_stranger], np.sort(np.concatenate([rest[~is_stranger], held_rows]))


def measure(model, faces, gallery_rows, known, strangers, far: float) -> dict:
    from facespace.people.gallery.gallery import Gallery

    g = Gallery(":memory:", model, target_far=far)
    t0 = time.time()
    # force: the benchmark measures identification on every enrolled face, whatever its quality score
    g.enroll_many({name: faces.images[rows] for name, rows in gallery_rows.items()}, force=True)
    enrol_s = time.time() - t0
    t0 = time.time()
    res_known = g.identify(faces.images[known], k=1)
    res_strange = g.identify(faces.images[strangers], k=1)
    identify_s = time.time() - t0
    truth = faces.names[known]
    top = np.array([r.candidates[0][0] for r in res_known])
    d_known = np.array([r.distance for r in res_known])
    d_strange = np.sort([r.distance for r in res_strange])
    rank1 = top == truth
    oracle = np.nextafter(d_strange[int(np.floor(far * len(d_strange)))], -np.inf)  # accepts <= far of strangers
    t = g.threshold
    accepted = int(sum(r.name is not None for r in res_strange))
    return {
        "rank1": float(rank1.mean()),
        "dir_at_far": float((rank1 & (d_known <= oracle)).mean()),
        "oracle_threshold": float(oracle),
        "calibrated_threshold": float(t),
        "strangers_accepted": accepted,
        "strangers": len(strangers),
        "stranger_accept_rate": accepted / len(strangers),
        "known_named_right": float(np.mean([r.name == n for r, n in zip(res_known, truth)])),
        "known_rejected": float(np.mean([r.name is None for r in res_known])),
        "enrol_seconds": round(enrol_s, 2),
        "identify_seconds": round(identify_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=LFW / "lfw-deepfunneled")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--enrol", type=int, default=3, help="images enrolled per person")
    ap.add_argument("--far", type=float, default=0.01)
    ap.add_argument("--pca", type=int, nargs="*", default=[32])
    ap.add_argument("--models", type=Path, nargs="*", default=[])
    ap.add_argument("--verifier-retrain", type=Path, nargs="*", default=[],
                    help="verifier checkpoints whose settings train a fresh network on the PCA half only")
    ap.add_argument("--train-people", type=float, default=0.0,
                    help="share of the people with > --enrol images kept out of the gallery for training (PCA, "
                         "retrained verifiers); 0: the gallery takes them all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from facespace.models.registry import load_model
    from facespace.data.crops import model_crop
    from facespace.data import load_faces
    from facespace.models.pca import PCAAutoencoder
    from facespace.models.pixels import PixelEncoder

    faces_by_shape = {}

    def faces_for(size: int, grey: bool, crop="lfw"):
        key = (size, grey, str(crop))
        if key not in faces_by_shape:
            faces_by_shape[key] = load_faces(str(args.lfw), size=size, crop=crop, grayscale=grey, progress=False)
            assert (faces_by_shape[key].paths == faces_by_shape[next(iter(faces_by_shape))].paths).all()
        return faces_by_shape[key]

    faces = faces_for(args.size, False)
    gallery_rows, known, strangers, training = split(faces, args.enrol, args.seed, args.train_people)
    print(f"{len(gallery_rows)} people enrolled ({sum(map(len, gallery_rows.values()))} faces), {len(known)} known "
          f"probes, {len(strangers)} stranger probes, {len(training)} training images", file=sys.stderr)
    runs = [("raw pixels", PixelEncoder(size=args.size, channels=3), faces)]
    for d in args.pca:
        runs.append((f"pca-{d}", PCAAutoencoder(code_size=d).fit(faces.images[training]), faces))
    for path in args.models:
        m = load_model(path)
        runs.append((f"{m.kind} ({path})", m, faces_for(m.image_shape[0], m.image_shape[2] == 1, model_crop(m))))
    for path in args.verifier_retrain:
        m = load_model(path, kind="verifier")
        f = faces_for(m.image_shape[0], m.image_shape[2] == 1, model_crop(m))
        fresh = verifier_retrained(path, f.subset(training), args.threads, "the training people (no enrolled person, no stranger)")
        runs.append((f"verifier retrained on the training people ({path})", fresh, f))
    rows = []
    for label, model, f in runs:
        t0 = time.time()
        shown = f"{args.size}px colour, crop lfw" if model.kind in ("pixels", "pca") else model_input(model)
        r = {"model": label, "input": shown, **measure(model, f, gallery_rows, known, strangers, args.far),
             "seconds": round(time.time() - t0, 1)}
        rows.append(r)
        print(r, file=sys.stderr, flush=True)
    lines = ["| model | input | rank-1 (closed set) | DIR@FAR=1% | calibrated threshold | strangers accepted | "
             "known named right at it | known rejected at it | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['input']} | {r['rank1']:.4f} | {r['dir_at_far']:.4f} | {r['calibrated_threshold']:.4f} | "
                     f"{r['strangers_accepted']} / {r['strangers']} ({r['stranger_accept_rate']:.2%}) | "
                     f"{r['known_named_right']:.4f} | {r['known_rejected']:.4f} | {r['seconds']} |")
    held_note = (f", with {args.train_people:.0%} of the people with >= {args.enrol + 1} images, kept out of the gallery"
                 if args.train_people else "")
    notes = (f"LFW deep-funneled, {args.size}x{args.size} RGB, cosine distance. {len(gallery_rows)} people with >= "
             f"{args.enrol + 1} images enrolled with {args.enrol} images each ({sum(map(len, gallery_rows.values()))} "
             f"faces); {len(known)} known probes (their other images); {len(strangers)} stranger probes (half of the "
             f"people with < {args.enrol + 1} images, never enrolled); PCA fitted on the other half only "
             f"({len(training)} images{held_note}). Stranger threshold: calibrated by the gallery from the enrolled people "
             f"for FAR = {args.far:.0%} (leave-one-person-out nearest-impostor distances; the target held with 95 % "
             "confidence, `facespace.people.thresholds.stranger_threshold`). DIR@FAR uses the "
             "threshold that accepts that share of the actual strangers (oracle), as is standard.")
    if args.verifier_retrain:
        notes += (" The retrained verifier learnt only from the training images' people with >= 2 images, with its "
                  "checkpoint's settings: it never saw an enrolled person or a stranger.")
    write_results("identification", rows, "\n".join(lines), notes, {"seed": args.seed, "train_people": args.train_people}, results_dir=args.results_dir)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Face quality: does `facespace.people.quality` flag non-faces and blurred faces? AUC of the score and of each measure.

Part 1, non-faces of the embedded default (scikit-image's `lfw_subset`: 100 faces, then 100
background crops), 25x25 grey. Two-fold by faces: PCA-16 fitted on 30 faces of one half, the
quality reference measured on the other 20 faces of that half (held out from the fit), evaluated on
the 50 faces of the other half and all 100 non-faces; the two folds' figures averaged. A second row
uses PCA-32 fitted on 2,000 deep-funneled LFW images (LFW's central crop) with a reference of 500
other LFW images: lfw_subset's faces are framed differently (tighter, not deep-funneled), and the
originals of its 100 faces may be among those LFW images (it does not say which it took).

Part 2, blurred LFW faces (needs ../shared/data/lfw): people split in two by a seeded permutation;
PCA-32 (32x32 RGB, LFW central crop) fitted on 2,000 images of the first half, reference on 500
other images of that half; evaluated on 500 images of the other half and their copies blurred with
a Gaussian of sigma uniform in [1.5, 2] px on the 250x250 original (before crop and resize).

For each: AUC (probability that a good face scores higher than a bad one) of the combined score
and of each measure alone (sharpness, contrast, brightness typicality |b - reference median|,
relative reconstruction error, code distance), and the share flagged (`ok` False) at several
quantiles of the reference (a check fails when a face is worse than 1 - q of the reference faces;
q = 0.01 is the default).

    .venv/bin/python benchmarks/quality.py [--n 500]

Writes benchmarks/results/quality.{json,md} and benchmarks/results/quality_examples.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, write_results  # noqa: E402

QUANTILES = (0.005, 0.01, 0.02, 0.05)
MEASURES = ("score", "sharpness", "contrast", "brightness", "recon_error", "code_distance")


def auc(good: np.ndarray, bad: np.ndarray) -> float:
    """P(good > bad) + 0.5 P(tie): the Mann-Whitney AUC."""
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([good, bad]))
    return float((r[: len(good)].sum() - len(good) * (len(good) + 1) / 2) / (len(good) * len(bad)))


def evaluate(model, reference, good: np.ndarray, bad: np.ndarray) -> dict:
    """AUCs (good vs bad) of the score and each measure, and flag rates at each quantile."""
    from facespace.people.quality import face_quality

    out = {}
    per = {}
    for q in QUANTILES:
        per[q] = (face_quality(good, model=model, reference=reference, quantile=q),
                  face_quality(bad, model=model, reference=reference, quantile=q))
    qg, qb = per[0.01]
    med_b = reference.value("brightness", 0.5)
    value = {  # higher = more face-like / better
        "score": lambda qs: np.array([r.score for r in qs]),
        "sharpness": lambda qs: np.array([r.sharpness for r in qs]),
        "contrast": lambda qs: np.array([r.contrast for r in qs]),
        "brightness": lambda qs: -np.abs(np.array([r.brightness for r in qs]) - med_b),
        "recon_error": lambda qs: -np.array([np.nan if r.recon_error is None else r.recon_error for r in qs]),
        "code_distance": lambda qs: -np.array([np.nan if r.code_distance is None else r.code_distance for r in qs]),
    }
    for k in MEASURES:
        g, b = value[k](qg), value[k](qb)
        out[f"auc_{k}"] = None if np.isnan(g).any() else round(auc(g, b), 4)
    for q, (a, b) in per.items():
        out[f"good_flagged@{q}"] = round(float(np.mean([not r.ok for r in a])), 4)
        out[f"bad_flagged@{q}"] = round(float(np.mean([not r.ok for r in b])), 4)
    out["n_good"], out["n_bad"] = len(good), len(bad)
    out["_qualities"] = (qg, qb)
    return out


def part_nonfaces(lfw_files: list[str] | None, seed: int) -> list[dict]:
    from skimage.data import lfw_subset

    from facespace.models.pca import PCAAutoencoder
    from facespace.people.quality_reference import quality_reference

    x = lfw_subset().astype(np.float32)[..., None]
    faces, nonfaces = x[:100], x[100:]
    perm = np.random.default_rng(seed).permutation(100)
    halves = [perm[:50], perm[50:]]
    rows, examples = [], None
    pooled_g, pooled_b = [], []
    for f in range(2):
        own, other = halves[f], halves[1 - f]
        pca = PCAAutoencoder(code_size=16).fit(faces[own[:30]])
        ref = quality_reference(faces[own[30:]], model=pca, source="held-out faces")
        r = evaluate(pca, ref, faces[other], nonfaces)
        pooled_g.append(r["_qualities"][0])
        pooled_b.append(r["_qualities"][1])
        r.pop("_qualities")
        rows.append(r)
        if f == 0:
            examples = (faces[other], nonfaces, pca, ref)
    # pooled: average the two folds' numbers (equal sizes)
    row = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if not k.startswith("n_")}
    row.update(part="embedded faces vs non-faces", model="PCA-16 on 30 lfw_subset faces (2 folds)",
               reference="20 held-out lfw_subset faces", n_good=100, n_bad=100, bad="non-faces (x2 folds)")
    out = [row]
    if lfw_files is not None:
        from facespace.data import load_images

        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(lfw_files))[:2500]
        imgs = load_images([lfw_files[i] for i in pick], size=25, grayscale=True)
        pca = PCAAutoencoder(code_size=32).fit(imgs[:2000])
        ref = quality_reference(imgs[2000:], model=pca, source="held-out LFW faces")
        r = evaluate(pca, ref, faces, nonfaces)
        r.pop("_qualities")
        r.update(part="embedded faces vs non-faces", model="PCA-32 on 2,000 LFW images (central crop, 25 grey)",
                 reference="500 other LFW images", bad="non-faces")
        out.append(r)
    return out, examples


def blurred_copies(paths: list[str], size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(sharp, blurred, sigmas)` crops `(n, size, size, 3)`, preprocessed exactly as `load_images`."""
    import cv2
    from PIL import Image

    from facespace.data.images import crop_box, resample_filter

    sharp, soft, sigmas = [], [], []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB"))
        t, l, b, r = crop_box("lfw", a.shape[1], a.shape[0])
        s = float(rng.uniform(1.5, 2.0))
        for arr, dest in ((a, sharp), (cv2.GaussianBlur(a, (0, 0), s), soft)):
            out = Image.fromarray(arr).resize((size, size), resample_filter(r - l, size), box=(l, t, r, b))
            dest.append(np.asarray(out, np.float32) / 255.0)
        sigmas.append(s)
    return np.stack(sharp), np.stack(soft), np.array(sigmas)


def part_blur(lfw_files: list[str], n: int, seed: int, size: int = 32) -> tuple[list[dict], tuple]:
    from facespace.data import load_images
    from facespace.models.pca import PCAAutoencoder
    from facespace.people.quality_reference import quality_reference

    rng = np.random.default_rng(seed)
    people = sorted({Path(p).parent.name for p in lfw_files})
    train_people = set(rng.permutation(people)[: len(people) // 2].tolist())
    train = [p for p in lfw_files if Path(p).parent.name in train_people]
    test = [p for p in lfw_files if Path(p).parent.name not in train_people]
    train = [train[i] for i in rng.permutation(len(train))[:2500]]
    test = [test[i] for i in rng.permutation(len(test))[:n]]
    imgs = load_images(train, size=size)
    pca = PCAAutoencoder(code_size=32).fit(imgs[:2000])
    ref = quality_reference(imgs[2000:], model=pca, source="held-out LFW faces")
    sharp, soft, sigmas = blurred_copies(test, size, rng)
    r = evaluate(pca, ref, sharp, soft)
    r.pop("_qualities")
    r.update(part="LFW faces vs blurred copies", model=f"PCA-32 on 2,000 LFW images ({size}x{size} RGB)",
             reference="500 other images of the training people", bad="blurred (sigma 1.5-2 px)")
    from facespace.people.quality_reference import reference_for

    fallback = evaluate(pca, reference_for(None, (size, size, 3)), sharp, soft)  # nothing stored with the model
    fallback.pop("_qualities")
    fallback.update(part="LFW faces vs blurred copies", model="same, no stored reference (image checks vs lfw_subset)",
                    reference="embedded lfw_subset faces", bad="blurred (sigma 1.5-2 px)")
    return [r, fallback], (sharp, soft, pca, ref)


def picture(sets: list[tuple[str, np.ndarray, object, object]], path: Path, per_row: int = 8) -> None:
    """Rows of example faces with their score (green: ok, red: flagged) and first reason."""
    import cv2

    from facespace.grid import save_png, to_uint8
    from facespace.people.quality import face_quality

    tile, cap = 96, 30
    rows = []
    for title, x, model, ref in sets:
        q = face_quality(x[:per_row], model=model, reference=ref)
        strip = np.full((tile + cap + 22, per_row * (tile + 4), 3), 255, np.uint8)
        cv2.putText(strip, title, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for i, (img, r) in enumerate(zip(x[:per_row], q)):
            pic = to_uint8(img if img.shape[-1] == 3 else np.repeat(img, 3, axis=-1))
            pic = cv2.resize(pic, (tile, tile), interpolation=cv2.INTER_NEAREST)
            x0 = i * (tile + 4)
            strip[22:22 + tile, x0:x0 + tile] = pic
            colour = (0, 140, 0) if r.ok else (200, 0, 0)
            cv2.putText(strip, f"{r.score:.2f}", (x0 + 2, 22 + tile + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1,
                        cv2.LINE_AA)
            why = "ok" if r.ok else r.reasons[0].split(":")[0]
            cv2.putText(strip, why, (x0 + 2, 22 + tile + 26), cv2.FONT_HERSHEY_SIMPLEX, 0.36, colour, 1, cv2.LINE_AA)
        rows.append(strip)
    save_png(np.concatenate(rows, axis=0), path)


def table(rows: list[dict]) -> str:
    head = ["part", "model", "score AUC", "sharpness", "contrast", "brightness", "recon error", "code distance",
            "good flagged @0.01", "bad flagged @0.01", "good/bad flagged @0.05"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        lines.append("| " + " | ".join([r["part"], r["model"]] + [f(r[f"auc_{k}"]) for k in MEASURES] + [
            f"{r['good_flagged@0.01']:.1%}", f"{r['bad_flagged@0.01']:.1%}",
            f"{r['good_flagged@0.05']:.1%} / {r['bad_flagged@0.05']:.1%}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="LFW faces (and as many blurred copies)")
    ap.add_argument("--lfw", type=Path, default=LFW / "lfw-deepfunneled")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    files = sorted(str(p) for p in args.lfw.glob("*/*.jpg")) if args.lfw.is_dir() else None
    rows, (f_good, f_bad, f_model, f_ref) = part_nonfaces(files, args.seed)
    sets = [("embedded faces (held out), PCA-16", f_good, f_model, f_ref),
            ("embedded non-faces, PCA-16", f_bad, f_model, f_ref)]
    note = ""
    if files:
        blur_rows, (sharp, soft, pca, ref) = part_blur(files, args.n, args.seed)
        rows += blur_rows
        sets += [("LFW faces (unseen people), PCA-32", sharp, pca, ref),
                 ("the same faces blurred (sigma 1.5-2 px on the 250 px original)", soft, pca, ref)]
    else:
        note = f"\n\nLFW not found at {args.lfw}: the blurred-faces part was skipped."
    picture(sets, RESULTS / "quality_examples.png")
    notes = (__doc__.split("\n\n", 1)[1].rsplit("\n\n", 2)[0]
             + "\n\nAUC columns: the score, then each measure alone (higher = tells good from bad better; 0.5 = "
             "chance, below 0.5 = ranks the wrong way). 'flagged': share with `ok` False."
             + f"\n\nFlag rates at each quantile q (good / bad): "
             + "; ".join(f"{r['part']} ({r['model']}): " + ", ".join(
                 f"q={q}: {r[f'good_flagged@{q}']:.1%} / {r[f'bad_flagged@{q}']:.1%}" for q in QUANTILES) for r in rows)
             + "\n\nReading: a measure with AUC below 0.5 ranks the wrong way. Reconstruction error alone does: "
             "smooth background patches and blurred faces are *easier* for a face model to reconstruct than "
             "sharp faces, so it is kept only as one check among several (it catches noise and clutter, see "
             "tests/test_quality.py), and the score is the weakest check, not an average. The PCA fitted on LFW "
             "judges lfw_subset's faces as unlike its training faces (they are framed differently): a reference "
             "must come from the model's own kind of crops, which is why it is stored with the model. Without one "
             "(last row) only the image checks run, against the embedded faces, and refuse more good LFW faces "
             "(framed and lit unlike lfw_subset's)."
             + f"\n\nRun time {time.time() - t0:.0f} s. Examples: quality_examples.png." + note)
    write_results("quality", rows, table(rows), notes)
    print(table(rows))


if __name__ == "__main__":
    main()

"""Train the identity verifier for single LFW View 2 folds and measure it, honestly held out.

For test fold k and calibration fold c (default k+1), every image of every person named in fold k's
or fold c's pairs is removed before training. The distance threshold is the best one on fold c's
600 pairs and is applied unchanged to fold k's 600 pairs. So no image of a tested or calibrating
person trains the model. Also reported: AUC on fold k and the "oracle" accuracy (threshold chosen on
fold k itself; an upper bound, not a result). The test fold is evaluated every `--eval-every`
epochs so that a run cut short still leaves numbers.

Every run is appended to benchmarks/results/verifier_folds.json, and verifier_folds.md is rebuilt
from all runs.

    .venv/bin/python benchmarks/verifier_folds.py --fold 1 --size 48 --epochs 14 --out runs/verifier_fold1
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
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facespace.data.augment import AugmentConfig  # noqa: E402
from facespace.data.faceset import FaceSet  # noqa: E402
from facespace.files import write_text_atomic  # noqa: E402
from facespace.models.verifier import VerifierConfig, VerifierNet  # noqa: E402
from facespace.training.loop import TrainConfig  # noqa: E402
from facespace.training.verifier import ObjectiveConfig, identity_split, train_verifier  # noqa: E402

LFW = ROOT.parent / "shared" / "data" / "lfw"
RESULTS = ROOT / "benchmarks" / "results"
TIGHT_BOX = (70, 65, 190, 185)  # (top, left, bottom, right): the 120-pixel face box of a 250x250 image


def load_lfw_tight(size: int, grey: bool) -> FaceSet:
    """All of LFW deep-funneled, cropped to the 120-pixel face box (decoded once, cached)."""
    from facespace.data import load_faces

    return load_faces(str(LFW / "lfw-deepfunneled"), size=size, crop=TIGHT_BOX, grayscale=grey,
                      workers=1, progress=False)


def resize_faces(faces: FaceSet, size: int, grey: bool) -> FaceSet:
    """Down-size (antialiased) and optionally turn grey (ITU-R 601 luma) a colour FaceSet."""
    x = torch.from_numpy(np.ascontiguousarray(faces.images.transpose(0, 3, 1, 2)))
    if grey:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return FaceSet(x.numpy().transpose(0, 2, 3, 1).copy(), faces.names, faces.paths, faces.source)


def read_folds(path: Path) -> list[list[tuple[str, str, bool]]]:
    """pairs.txt -> per fold, a list of (path_a, path_b, same) with paths `Name/Name_NNNN.jpg`."""
    from facespace.data import read_pairs

    pairs = read_pairs(path)
    folds: list[list[tuple[str, str, bool]]] = [[] for _ in range(max(p.fold for p in pairs) + 1)]
    for p in pairs:
        folds[p.fold].append((f"{p.name_a}/{p.name_a}_{p.index_a:04d}.jpg",
                              f"{p.name_b}/{p.name_b}_{p.index_b:04d}.jpg", p.same))
    return folds


def fold_people(fold) -> set[str]:
    return {p.split("/")[0] for a, b, _ in fold for p in (a, b)}


def pair_distances(model: VerifierNet, faces: FaceSet, fold) -> tuple[np.ndarray, np.ndarray]:
    row = {"/".join(Path(p).parts[-2:]): i for i, p in enumerate(faces.paths)}
    ia = [row[a] for a, _, _ in fold]
    ib = [row[b] for _, b, _ in fold]
    za, zb = model.encode(faces.images[ia]), model.encode(faces.images[ib])
    return 1 - (za * zb).sum(1), np.array([s for _, _, s in fold])


def best_threshold(d: np.ndarray, same: np.ndarray) -> float:
    cands = np.sort(d)
    cands = np.concatenate([[cands[0] - 1e-6], (cands[1:] + cands[:-1]) / 2, [cands[-1] + 1e-6]])
    accs = [((d <= t) == same).mean() for t in cands]
    return float(cands[int(np.argmax(accs))])


def auc(d: np.ndarray, same: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(same, -d))


def evaluate(model, faces, test, calib, seen=()) -> dict:
    dt, st = pair_distances(model, faces, test)
    dc, sc = pair_distances(model, faces, calib)
    t = best_threshold(dc, sc)
    extra = {}
    if seen:  # pairs of people the model trained on: a threshold from them is biased low
        ds, ss = pair_distances(model, faces, [p for fold in seen for p in fold])
        ts = best_threshold(ds, ss)
        extra = {"seen_threshold": ts, "seen_threshold_accuracy": float(((dt <= ts) == st).mean())}
    return extra | {
        "accuracy": float(((dt <= t) == st).mean()),
        "threshold": t,
        "auc": auc(dt, st),
        "oracle_accuracy": float(((dt <= best_threshold(dt, st)) == st).mean()),
        "calib_accuracy": float(((dc <= t) == sc).mean()),
    }


def write_markdown(runs: list[dict]) -> None:
    lines = [
        "# Identity verifier on single LFW View 2 folds",
        "",
        "Test fold's and calibration fold's people removed from training; threshold chosen on the",
        "calibration fold and applied to the test fold. `oracle` = best threshold on the test fold itself",
        "(upper bound, not a result). Cosine distance between flip-averaged unit embeddings.",
        "",
        "| date | fold | calib | input | net | epochs run | train imgs / people | acc | acc, thr. from seen people | oracle | AUC | CPU min | wall min | threads | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        a = r["args"]
        m = r.get("final") or {}
        lines.append(
            f"| {r['date'][:16]} | {a['fold']} | {r['calib_fold']} | {a['size']}px {'grey' if a['grey'] else 'colour'} "
            f"| w{a['width']} {a['blocks']} d{a['code_size']} | {r['epochs_run']}/{a['epochs']} "
            f"| {r['train_images']} / {r['train_people']} | {m.get('accuracy', float('nan')):.3f} "
            f"| {m.get('seen_threshold_accuracy', float('nan')):.3f} "
            f"| {m.get('oracle_accuracy', float('nan')):.3f} | {m.get('auc', float('nan')):.3f} "
            f"| {r['cpu_min']:.1f} | {r['wall_min']:.1f} | {a['threads']} | {a['note']} |"
        )
    lines += ["", "Per-epoch losses of each run are in verifier_folds.json.", ""]
    if runs:
        r = runs[-1]
        lines += [f"Machine: {r['machine']}", f"Versions: {r['versions']}", f"Last command: `{r['command']}`", ""]
    write_text_atomic(RESULTS / "verifier_folds.md", "\n".join(lines))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fold", type=int, default=1, help="test fold, 1..10")
    p.add_argument("--calib-fold", type=int, default=None, help="calibration fold (default: the next one)")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--colour", dest="grey", action="store_false")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--blocks", default="1,2,2,1")
    p.add_argument("--code-size", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=5e-2)
    p.add_argument("--margin", type=float, default=0.35)
    p.add_argument("--scale", type=float, default=30.0)
    p.add_argument("--loss", default="cosface")
    p.add_argument("--min-images", type=int, default=2)
    p.add_argument("--max-images", type=int, default=80)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (checkpoints, metrics.csv, loss.png)")
    p.add_argument("--note", default="")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t_wall, t_cpu = time.time(), time.process_time()
    folds = read_folds(LFW / "pairs.txt")
    calib_fold = a.calib_fold or a.fold % len(folds) + 1
    test, calib = folds[a.fold - 1], folds[calib_fold - 1]
    seen = [f for k, f in enumerate(folds) if k + 1 not in (a.fold, calib_fold)]
    faces = resize_faces(load_lfw_tight(64, grey=False), a.size, a.grey)
    held_out = fold_people(test) | fold_people(calib)
    train_faces = faces.subset(~np.isin(faces.names, sorted(held_out)))
    obj_cfg = ObjectiveConfig(min_images=a.min_images, max_images=a.max_images, loss=a.loss, margin=a.margin,
                              scale=a.scale, augment=AugmentConfig())
    tr, va, _, people = identity_split(train_faces, obj_cfg, seed=a.seed)
    print(f"fold {a.fold} (calib {calib_fold}): {len(held_out)} people held out; training on {len(tr)} images "
          f"of {len(people)} people, {len(va)} validation images", file=sys.stderr)
    cfg = VerifierConfig(size=a.size, channels=1 if a.grey else 3, code_size=a.code_size, width=a.width,
                         blocks=tuple(int(b) for b in a.blocks.split(",")), dropout=a.dropout)
    loop = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, optimizer="adamw", schedule="onecycle",
                       weight_decay=a.weight_decay, grad_clip=5.0, seed=a.seed, threads=a.threads)
    run = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "args": vars(a), "calib_fold": calib_fold,
           "train_images": int(len(tr)), "train_people": len(people), "config": cfg.__dict__ | {"blocks": cfg.blocks},
           "command": " ".join([".venv/bin/python", "benchmarks/verifier_folds.py", *(argv or sys.argv[1:])]),
           "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, {platform.processor() or platform.machine()}",
           "versions": f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
           "epochs": [], "epochs_run": 0, "final": None}
    torch.manual_seed(a.seed)
    model = train_verifier(train_faces, model=cfg, objective=obj_cfg, loop=loop, out=a.out, progress=False)
    final = evaluate(model, faces, test, calib, seen)
    print(json.dumps(final), file=sys.stderr)
    history = []
    if a.out and (Path(a.out) / "metrics.csv").exists():
        import csv

        with open(Path(a.out) / "metrics.csv") as f:
            history = list(csv.DictReader(f))
    run.update(final=final, epochs=history, epochs_run=len(history) or a.epochs,
               cpu_min=(time.process_time() - t_cpu) / 60, wall_min=(time.time() - t_wall) / 60)
    save_run(run)


def save_run(run: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "verifier_folds.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs = [r for r in runs if r["date"] != run["date"] or r["args"] != run["args"]] + [run]
    write_text_atomic(path, json.dumps(runs, indent=1, default=str))
    write_markdown(runs)


if __name__ == "__main__":
    main()

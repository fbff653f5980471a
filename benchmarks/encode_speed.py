"""End-to-end encoding speed of dlib's encoder on a folder of 1,000 photos: one-image loop vs batched
workers.

Each photo is read, its face found (HOG; CNN where HOG finds none), aligned on 5 landmarks and
encoded. Rows, side by side in one run on the same files:

- a plain loop, one image at a time, as a face_recognition script does it
  (`face_locations` -> `face_encodings` per file): `model.locate`, `model.align`, `model.encode` of one chip;
- `facespace encode` (`encode_sources`) with 1 worker: chunks of 64 photos, one batched encode per chunk;
- `facespace encode` with 2 workers (both cores): the same chunks over two processes that each load
  the model once; the codes are checked equal to the 1-worker run's.

    .venv/bin/python benchmarks/encode_speed.py [--n 1000]

Writes benchmarks/results/encode_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    from facespace.data.images import read_image
    from facespace.models.registry import load_model
    from facespace.pipelines.encoding import encode_sources

    files = sorted((LFW / "lfw-deepfunneled").glob("*/*.jpg"))
    pick = [files[i] for i in np.random.default_rng(0).permutation(len(files))[: args.n]]
    model = load_model("dlib")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for f in pick:
            shutil.copy(f, folder / f.name)
        photos = sorted(str(p) for p in folder.iterdir())
        t0 = time.perf_counter()
        loop = []
        for p in photos:
            img = read_image(p)
            h, w = img.shape[:2]
            loop.append(model.encode(model.align(img, model.locate(img) or (0, 0, w, h))[None])[0])
        rows.append({"how": "one-image loop (locate, align, encode per file)", "seconds": time.perf_counter() - t0})
        results = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            results[workers], _, _ = encode_sources(model, [str(folder)], workers=workers)
            rows.append({"how": f"facespace encode, batched, {workers} worker{'s' if workers > 1 else ''}",
                         "seconds": time.perf_counter() - t0})
        same = bool(np.array_equal(results[1].codes, results[2].codes))
        loop_same = float(np.abs(np.stack(loop) - results[1].codes).max())
    for r in rows:
        r["images_per_second"] = args.n / r["seconds"]
        r["speed_vs_loop"] = rows[0]["seconds"] / r["seconds"]
        print(r, file=sys.stderr)
    out = {"command": "python " + " ".join(sys.argv), "machine": machine(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"), "photos": args.n,
           "codes_equal_1_vs_2_workers": same, "largest_difference_loop_vs_batched": loop_same, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encode_speed.json").write_text(json.dumps(out, indent=2))
    lines = ["# Encoding 1,000 photos with dlib's encoder, end to end", "",
             f"Command: `{out['command']}`; {out['machine']['platform']}, {out['machine']['cpu_count']} cores, load "
             f"{out['machine']['load_average']}.", "",
             f"{args.n} LFW deep-funneled photos (random, seed 0) in one folder: read, HOG detection, 5-point "
             "alignment, encoding. Codes of 1 and 2 workers equal: "
             f"{same}; largest difference between the loop's codes and the batched ones: {loop_same:.2g}.", "",
             "| how | seconds | images/s | × the loop |", "|---|---|---|---|"]
    lines += [f"| {r['how']} | {r['seconds']:.1f} | {r['images_per_second']:.1f} | {r['speed_vs_loop']:.2f} |" for r in rows]
    (RESULTS / "encode_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

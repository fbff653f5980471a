"""The quality gate with the built-in models (and dlib): share flagged on good and bad faces.

Per model, with its own stored quality reference (or the embedded default's where it has none),
at the gate's default (`face_quality`, quantile 0.01), each set given as image files so that every
model reads them its own way:

- good: 300 LFW deep-funneled photos (random, seed 0);
- blurred: the same photos blurred (Gaussian, sigma uniform in [1.5, 2] px on the 250x250 original);
- non-faces: scikit-image's 100 background crops of `lfw_subset` (25x25 grey), enlarged to 100 px;
- grey portraits: the same 300 photos turned grey and cropped tight to 92x112 (the AT&T portraits' size
  and framing), a camera and framing no built-in model was trained on. Their face side, 92 px, is
  passed as the size.

The first and last rows are good faces (the lower the share flagged, the better); blurred and
non-faces are bad ones (the higher, the better).

    .venv/bin/python benchmarks/quality_builtins.py [--models faces-ae faces-id dlib]

Writes benchmarks/results/quality_builtins.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, machine  # noqa: E402


def make_sets(root: Path, n: int, seed: int) -> dict[str, tuple[list[str], int | None]]:
    from PIL import Image, ImageFilter
    from skimage.data import lfw_subset

    rng = np.random.default_rng(seed)
    files = sorted((LFW / "lfw-deepfunneled").glob("*/*.jpg"))
    pick = [files[i] for i in rng.permutation(len(files))[:n]]
    sets: dict[str, tuple[list[str], int | None]] = {"good: LFW photos": ([str(p) for p in pick], None)}
    blurred, grey = [], []
    for i, p in enumerate(pick):
        img = Image.open(p).convert("RGB")
        b = root / f"blur_{i}.png"
        img.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 2.0)))).save(b)
        blurred.append(str(b))
        g = root / f"grey_{i}.png"
        img.convert("L").crop((79, 69, 171, 181)).save(g)  # 92 wide, 112 high, eyes to chin
        grey.append(str(g))
    sets["bad: blurred copies"] = (blurred, None)
    nonfaces = []
    for i, x in enumerate(lfw_subset()[100:]):
        q = root / f"nonface_{i}.png"
        Image.fromarray((x * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC).save(q)
        nonfaces.append(str(q))
    sets["bad: non-faces"] = (nonfaces, None)
    sets["good: grey 92x112 portraits"] = (grey, 92)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["faces-ae", "faces-id", "dlib"])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from facespace.data.inputs import as_images
    from facespace.models.registry import load_model
    from facespace.people.quality import face_quality

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(Path(tmp), args.n, args.seed)
        for name in args.models:
            model = load_model(name)
            row = {"model": name}
            for label, (paths, side) in sets.items():
                x = as_images(model, paths)
                q = face_quality(x, model=model, sizes=None if side is None else [side] * len(x))
                flagged = [r for r in q if not r.ok]
                reasons: dict[str, int] = {}
                for r in flagged:
                    for why in r.reasons:
                        key = why.split(":")[0]
                        reasons[key] = reasons.get(key, 0) + 1
                row[label] = {"flagged": len(flagged) / len(q), "n": len(q), "reasons": reasons}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    out = {"command": "python " + " ".join(sys.argv), "machine": machine(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality_builtins.json").write_text(json.dumps(out, indent=2))
    labels = [k for k in rows[0] if k != "model"]
    lines = ["# The quality gate with the built-in models", "",
             f"Command: `{out['command']}`; {out['machine']['platform']}, {out['machine']['cpu_count']} cores, load "
             f"{out['machine']['load_average']}.", "",
             f"Share flagged at the gate's default (quantile 0.01 of each model's reference). {args.n} LFW photos "
             "(seed 0), their blurred copies (sigma 1.5-2 px), lfw_subset's 100 non-faces enlarged to 100 px, and the "
             "same photos as grey 92x112 tight portraits. Good sets: lower is better; bad sets: higher is better.", "",
             "| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(
            f"{100 * r[k]['flagged']:.1f} % ({', '.join(f'{w} {c}' for w, c in sorted(r[k]['reasons'].items(), key=lambda t: -t[1])[:2])})"
            if r[k]["reasons"] else f"{100 * r[k]['flagged']:.1f} %" for k in labels) + " |")
    (RESULTS / "quality_builtins.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Face detectors on photos Haar did not pick: LFW faces composited onto scenes at known boxes.

LFW itself was collected with a Haar detector, so recall on LFW flatters it. Here every test photo
is one of scikit-image's sample scenes with no face in it (coffee, a cat, a rocket, brick, grass,
gravel, a galaxy field, a microscope slide, a rocket, a chessboard...), enlarged to 1,000-1,400 px
wide, with 2-5 LFW faces (the 150x150 box around the face of a 250x250 original, feathered at the
edge) pasted at random places, at sides of 60-260 px and rolls of -20 to +20 degrees. The truth is
the pasted face's inner box (the central 90x90 of the original, scaled and rotated with it).

A detection matches a planted face when its centre lies within 0.4 side of the face's centre and
its side is 0.4-2.5x the face's; each face matches at most once. Reported per detector: recall
(planted faces found), precision (detections that are a planted face; the cat, text and textures
draw false faces), mean milliseconds per megapixel (one process, wall time), and recall by face
size and by roll.

    .venv/bin/python benchmarks/detection_scenes.py [--scenes 24] [--detectors lbp haar dlib-hog dlib-cnn]

Writes benchmarks/results/detection_scenes.{json,md}.
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
from verification import LFW, RESULTS, machine  # noqa: E402

SCENES = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
          "colorwheel", "checkerboard", "text", "page", "moon", "horse", "retina", "cell")


def scene(name: str, rng) -> np.ndarray:
    """A sample scene as `(H, W, 3)` uint8, 1,000-1,400 px wide."""
    import cv2
    from skimage import data

    img = getattr(data, name)()
    if img.dtype != np.uint8:
        img = (np.clip(img.astype(np.float64) / max(float(img.max()), 1.0), 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    width = int(rng.integers(1000, 1401))
    h = int(round(img.shape[0] * width / img.shape[1]))
    return cv2.resize(img, (width, h), interpolation=cv2.INTER_CUBIC)


def paste(canvas: np.ndarray, face: np.ndarray, side: int, roll: float, cx: float, cy: float) -> None:
    """Paste the 150x150 face box, scaled so its inner 90 px face is `side` px, rolled, feathered."""
    import cv2

    scale = side / 90.0
    m = cv2.getRotationMatrix2D((75.0, 75.0), roll, scale)
    m[:, 2] += np.array([cx, cy]) - np.array([75.0, 75.0])
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(face, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = np.zeros((150, 150), np.float32)
    cv2.circle(mask, (75, 75), 70, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 6)
    alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = np.clip(canvas * (1 - alpha) + warped * alpha, 0, 255).astype(np.uint8)


def make_scenes(n: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = sorted((LFW / "lfw-deepfunneled").glob("*/*.jpg"))
    out = []
    for k in range(n):
        img = scene(SCENES[k % len(SCENES)], rng).copy()
        h, w = img.shape[:2]
        truth = []
        for _ in range(int(rng.integers(2, 6))):
            for _attempt in range(50):
                side = int(rng.integers(60, 261))
                cx, cy = rng.uniform(side, w - side), rng.uniform(side, h - side) if h > 2 * side + 2 else h / 2
                if all(np.hypot(cx - t["cx"], cy - t["cy"]) > 0.8 * (side + t["side"]) for t in truth):
                    break
            face = np.asarray(Image.open(files[int(rng.integers(len(files)))]).convert("RGB"))[50:200, 50:200]
            roll = float(rng.uniform(-20, 20))
            paste(img, face.astype(np.float32), side, roll, cx, cy)
            truth.append({"cx": cx, "cy": cy, "side": side, "roll": roll})
        out.append((SCENES[k % len(SCENES)], img, truth))
    return out


def match(found, truth) -> tuple[int, int, list[bool]]:
    """(matched faces, detections, found flag per planted face)."""
    hit = [False] * len(truth)
    used = 0
    for d in found:
        x, y, bw, bh = d.box
        cx, cy, side = x + bw / 2, y + bh / 2, (bw + bh) / 2
        for i, t in enumerate(truth):
            if not hit[i] and np.hypot(cx - t["cx"], cy - t["cy"]) <= 0.4 * t["side"] and 0.4 <= side / t["side"] <= 2.5:
                hit[i] = True
                used += 1
                break
    return used, len(found), hit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--detectors", nargs="*", default=["lbp", "haar", "dlib-hog", "dlib-cnn"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from facespace.photos.detect import detect_faces

    scenes = make_scenes(args.scenes, args.seed)
    planted = sum(len(t) for _, _, t in scenes)
    print(f"{len(scenes)} scenes, {planted} planted faces", file=sys.stderr)
    rows = []
    for det in args.detectors:
        tp = n_det = 0
        ms_per_mp, by_side, by_roll = [], {}, {}
        for name, img, truth in scenes:
            t0 = time.perf_counter()
            found = detect_faces(img, detector=det, max_side=1400)
            ms_per_mp.append((time.perf_counter() - t0) * 1000 / (img.shape[0] * img.shape[1] / 1e6))
            used, n, hit = match(found, truth)
            tp, n_det = tp + used, n_det + n
            for t, h in zip(truth, hit):
                by_side.setdefault("60-119" if t["side"] < 120 else "120-189" if t["side"] < 190 else "190-260", []).append(h)
                by_roll.setdefault("|roll| < 10" if abs(t["roll"]) < 10 else "|roll| 10-20", []).append(h)
        row = {"detector": det, "recall": tp / planted, "precision": tp / max(n_det, 1), "detections": n_det,
               "ms_per_megapixel": float(np.mean(ms_per_mp)),
               "recall_by_side": {k: float(np.mean(v)) for k, v in sorted(by_side.items())},
               "recall_by_roll": {k: float(np.mean(v)) for k, v in sorted(by_roll.items())}}
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    out = {"command": "python " + " ".join(sys.argv), "machine": machine(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "set": f"{len(scenes)} scenes (scikit-image samples, 1,000-1,400 px wide), {planted} LFW faces pasted at "
                  "60-260 px, rolls -20..+20 degrees, seed " + str(args.seed), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detection_scenes.json").write_text(json.dumps(out, indent=2))
    sides = list(rows[0]["recall_by_side"])
    lines = ["# Detectors on composited scenes (faces Haar did not select)", "",
             f"Command: `{out['command']}`; {out['machine']['platform']}, {out['machine']['cpu_count']} cores, "
             f"load {out['machine']['load_average']}.", "", out["set"] + ".", "",
             "| detector | recall | precision | detections | ms per megapixel | " + " | ".join(f"recall, side {s}" for s in sides)
             + " | recall, roll < 10 | recall, roll 10-20 |",
             "|---|---|---|---|---|" + "---|" * (len(sides) + 2)]
    for r in rows:
        lines.append(f"| {r['detector']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['detections']} | "
                     f"{r['ms_per_megapixel']:.0f} | " + " | ".join(f"{r['recall_by_side'].get(s, float('nan')):.3f}" for s in sides)
                     + f" | {r['recall_by_roll'].get('|roll| < 10', float('nan')):.3f} | "
                       f"{r['recall_by_roll'].get('|roll| 10-20', float('nan')):.3f} |")
    (RESULTS / "detection_scenes.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

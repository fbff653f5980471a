"""The sets with planted copies that benchmarks/duplicates.py scores near-duplicate finding on.

Built from LFW (../shared/data/lfw/lfw-deepfunneled), from the people of one split (people whose
name's CRC-32 is odd: `test`; even: `dev`):

(a) **LFW + altered copies** (`lfw_set`): photos (colour, 250x250), 10 % of which get a copy under
    another name, one of: the same bytes; JPEG re-encoded at quality 50-95; resized to 50-95 %; 0-2 %
    cut off each edge; brightness x0.9-1.1 (uniform draws); a tenth of those get a second copy.
(b) **grey studio-like portraits** (`studio_set`): 15 people with 10 or more photos, up to 11 photos
    each, turned grey and cut to the tight 120x120 face box (eyes to chin), saved as PNG; 9 of them
    also under another name, byte-identical.

Photos of one person that LFW itself holds twice (`NATIVE_COPY`) are dropped before the copies are
planted, so every pair the truth holds is a planted one.
"""

from __future__ import annotations

import io
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data"))
LFW = SHARED / "lfw" / "lfw-deepfunneled"
TIGHT = (70, 65, 190, 185)  # (top, left, bottom, right) of the face in a 250x250 LFW photo
NATIVE_COPY = 0.003  # 32x32 grey tight crops of one person this close: one picture twice in LFW


def split_people(split: str) -> list[Path]:
    parity = 1 if split == "test" else 0
    return sorted(p for p in LFW.iterdir() if p.is_dir() and zlib.crc32(p.name.encode()) % 2 == parity)


def without_native_copies(files: list[Path]) -> list[Path]:
    """`files` less the second of any two photos of one person that are one picture (see NATIVE_COPY)."""
    from facespace.data.images import load_images
    from facespace.people.distances import cross_distances

    by_person: dict[str, list[Path]] = {}
    for f in files:
        by_person.setdefault(f.parent.name, []).append(f)
    drop: set[Path] = set()
    for group in by_person.values():
        if len(group) < 2:
            continue
        x = load_images([str(f) for f in group], size=32, crop=TIGHT, grayscale=True).reshape(len(group), -1)
        d = cross_distances(x, x)
        for i, j in zip(*np.nonzero(np.triu(d < NATIVE_COPY, 1))):
            if group[i] not in drop:
                drop.add(group[j])
    return [f for f in files if f not in drop]


def planted_copy(src: Path, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """One altered copy of a photo: `(file bytes, extension, what was done)`."""
    from PIL import Image, ImageEnhance

    kind = ("same bytes", "jpeg", "resize", "crop", "brightness")[int(rng.integers(5))]
    if kind == "same bytes":
        return src.read_bytes(), src.suffix, kind
    img = Image.open(src)
    img.load()
    w, h = img.size
    buf = io.BytesIO()
    if kind == "jpeg":
        q = int(rng.integers(50, 96))
        img.save(buf, format="JPEG", quality=q)
        return buf.getvalue(), ".jpg", f"jpeg q{q}"
    if kind == "resize":
        s = float(rng.uniform(0.5, 0.95))
        img = img.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
        what = f"resize {s:.2f}"
    elif kind == "crop":
        cut = rng.uniform(0, 0.02, 4)
        img = img.crop((round(cut[0] * w), round(cut[1] * h), w - round(cut[2] * w), h - round(cut[3] * h)))
        what = "crop " + ",".join(f"{c:.3f}" for c in cut)
    else:
        f = float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.1) + 1)
        img = ImageEnhance.Brightness(img).enhance(f)
        what = f"brightness x{f:.2f}"
    img.save(buf, format="PNG")
    return buf.getvalue(), ".png", what


def lfw_set(people: list[Path], n: int, out: Path, seed: int) -> tuple[list[list[str]], list[Path]]:
    """Set (a) in `out`: returns the planted groups (file names: original first) and the unused photos."""
    rng = np.random.default_rng(seed)
    files = sorted(f for p in people for f in p.glob("*.jpg"))
    order = rng.permutation(len(files))
    chosen = without_native_copies([files[i] for i in order[: int(n * 1.02) + 8]])[:n]
    rest = [files[i] for i in order[int(n * 1.02) + 8:]]
    out.mkdir(parents=True)
    for f in chosen:
        shutil.copyfile(f, out / f.name)
    groups = []
    for k, i in enumerate(rng.choice(len(chosen), n // 10, replace=False)):
        group = [chosen[i].name]
        for c in range(2 if k % 10 == 0 else 1):
            data, ext, _ = planted_copy(chosen[i], rng)
            name = f"copy_{k:04d}_{c}{ext}"
            (out / name).write_bytes(data)
            group.append(name)
        groups.append(group)
    return groups, rest


def studio_set(people: list[Path], out: Path, seed: int) -> list[list[str]]:
    """Set (b) in `out`: returns the planted groups (file names)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    many = [p for p in people if len(list(p.glob("*.jpg"))) >= 10]
    out.mkdir(parents=True)
    names = []
    for p in [many[i] for i in sorted(rng.choice(len(many), 15, replace=False))]:
        for f in without_native_copies(sorted(p.glob("*.jpg")))[:11]:
            t, l, b, r = TIGHT
            Image.open(f).convert("L").crop((l, t, r, b)).save(out / f"{f.stem}.png")
            names.append(f"{f.stem}.png")
    groups = []
    for k, i in enumerate(rng.choice(len(names), 9, replace=False)):
        shutil.copyfile(out / names[i], out / f"IMG_{9000 + k}.png")
        groups.append([names[i], f"IMG_{9000 + k}.png"])
    return groups

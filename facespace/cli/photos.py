"""`facespace photos detect PHOTO... --out DIR`: faces found in whole photos, aligned and cropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from facespace.cli._util import out, say


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""
    nouns["photos"].command("detect")(faces)


def faces(
    photos: List[Path] = typer.Argument(..., help="Photos to look in (jpg, png, ...); EXIF rotation is honoured."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the crops and the boxed pictures."),
    size: int = typer.Option(64, help="Side of each crop in pixels (a model's input size)."),
    grayscale: bool = typer.Option(False, "--grayscale", help="One-channel crops."),
    model: Optional[Path] = typer.Option(
        None, help="Take --size and --grayscale from this model checkpoint's input shape."
    ),
    detector: str = typer.Option("auto", help="Face detector: auto, lbp or haar."),
    min_size: int = typer.Option(24, help="Smallest face side looked for, in working-image pixels."),
    max_side: int = typer.Option(800, help="Photos are searched at most this many pixels wide/high."),
    min_neighbors: Optional[int] = typer.Option(
        None, help="Agreeing detections a face needs (higher: fewer false faces). Default: the detector's."
    ),
    angles: str = typer.Option(
        "0", help="Comma-separated rolls in degrees to search at, e.g. '-30,-15,0,15,30' for tilted faces."
    ),
    level: bool = typer.Option(True, "--level/--no-level", help="Rotate each face so the eyes are level."),
) -> None:
    """Find the faces in photos; write each aligned crop and a picture with the boxes drawn.

    For each photo P it writes OUT/P.face<k>.png (k = 0, 1, ... best first) and OUT/P.boxes.png,
    and prints one JSON line per face to stdout: photo, face, x, y, width, height, score, angle,
    crop. A photo without a face is reported on stderr ("no face found") and gets only its
    boxes picture. Every photo is read before anything is written.
    """
    from facespace.errors import FacespaceError
    from facespace.grid import save_png
    from facespace.photos.faces import draw_boxes, find_faces, read_photo

    try:
        rolls = tuple(float(a) for a in angles.split(",") if a.strip())
    except ValueError:
        raise FacespaceError(f"--angles {angles!r}: expected comma-separated degrees, e.g. '-15,0,15'") from None
    if model is not None:
        from facespace.models.registry import load_model

        h, _, c = load_model(model).image_shape
        size, grayscale = int(h), c == 1
    if size < 1:
        raise FacespaceError(f"--size {size} must be a positive number of pixels, e.g. 64")
    options = dict(min_size=min_size, max_side=max_side, min_neighbors=min_neighbors, angles=rolls or (0.0,))
    results = []
    for path in photos:  # everything is found before anything is written
        image, scale = read_photo(path)
        found = find_faces(image, scale=scale, size=size, grayscale=grayscale, detector=detector, level=level,
                           **options)
        results.append((path, image, scale, found))
    names = _unique_stems([r[0] for r in results])
    total = 0
    for (path, image, scale, found), stem in zip(results, names):
        save_png(draw_boxes(image, found, scale=scale), out_dir / f"{stem}.boxes.png")
        if not found:
            say(f"{path}: no face found")
        for k, face in enumerate(found):
            crop_path = out_dir / f"{stem}.face{k}.png"
            save_png(face.crop if face.crop.shape[-1] == 3 else face.crop[..., 0], crop_path)
            x, y, w, h = face.box
            row = dict(photo=str(path), face=k, x=x, y=y, width=w, height=h, score=round(face.score, 3),
                       angle=round(face.angle, 1), crop=str(crop_path))
            out(json.dumps(row))
        total += len(found)
    say(f"{total} face(s) in {len(photos)} photo(s); crops and boxes in {out_dir}")


def _unique_stems(paths: list[Path]) -> list[str]:
    """File stems, with '-2', '-3'... added where two photos share one."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = p.stem or "photo"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names

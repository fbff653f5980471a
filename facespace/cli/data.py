"""`facespace data info SOURCE`: what a folder, archive or "embedded" holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def info(
    source: str = typer.Argument(..., help="An image folder, an LFW .tgz, a scikit-learn lfw_home, or 'embedded'."),
    size: int = typer.Option(32, help="Side of the loaded images in pixels."),
    crop: str = typer.Option("lfw", help="'lfw' (img[80:-80, 80:-80] of 250x250 images), 'none', or top,left,bottom,right."),
    grayscale: bool = typer.Option(False, "--grayscale", help="Load one channel instead of three."),
    strict: bool = typer.Option(False, "--strict", help="Fail on an unreadable image instead of skipping it."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse and store the decoded images."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of 'key: value' lines."),
) -> None:
    """Load a face source and print: images, people, people with >= 2 images, image size, cache file."""
    from facespace.data import cache_entry, load_faces
    from facespace.data.crops import parse_crop

    import warnings

    from facespace.errors import DataWarning

    crop_spec = parse_crop(crop)
    with warnings.catch_warnings(record=True) as caught:  # what the load skipped, and why: listed below
        warnings.simplefilter("always", DataWarning)
        faces = load_faces(source, size=size, crop=crop_spec, grayscale=grayscale, strict=strict, cache=cache)
    skipped = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    people = faces.people()
    entry = cache_entry(source, size=size, crop=crop_spec, grayscale=grayscale) if cache else None
    h, w, c = faces.image_shape
    report = {
        "source": faces.source,
        "images": len(faces),
        "people": len(people),
        "people_with_2_or_more": sum(1 for k in people.values() if k >= 2),
        "image_size": f"{w}x{h}x{c}",
        "original_size": _original_size(faces.paths[0]) if len(faces) else None,
        "cache": str(entry) if entry is not None and entry.is_file() else "not cached",
        "skipped": skipped,
    }
    for label, values in faces.labels.items():
        if values.dtype == bool:
            report[label] = int(values.sum())
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


def _original_size(path: str) -> str | None:
    """`WxH` of the first source image as stored (read from its header), if it is a plain file."""
    from PIL import Image

    if not Path(path).is_file():  # an archive member or the embedded set
        return None
    try:
        with Image.open(path) as img:
            return f"{img.size[0]}x{img.size[1]}"
    except OSError:
        return None


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""
    nouns["data"].command("info")(info)

"""`facespace encode SOURCE... --model M --out codes.npy|.csv|.parquet`: codes out (embeddings).

The work is `facespace.pipelines.encoding.encode_sources`, which `index duplicates` shares.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from facespace.cli._util import DetectorOpt, ModelOpt, detection, encode_progress, say
from facespace.cli._util import out as print_out
from facespace.pipelines.encoding import encode_sources

Opt = typer.Option
Arg = typer.Argument

def encode_cmd(
    sources: Annotated[list[str], Arg(help="image folders (recursive), image files, or 'embedded'")],
    out: Annotated[Path, Opt("--out", help="codes file: codes.npy (+ codes.npy.json), codes.csv or codes.parquet; "
                             "or a folder (no suffix): shards + manifest.json, resumable after a kill")],
    detect: Annotated[bool, Opt("--detect", help="find the faces in whole photos; one row per face, with its box")] = False,
    detector: DetectorOpt = None,
    batch_size: Annotated[int, Opt("--batch-size", help="images encoded at a time")] = 256,
    shard_size: Annotated[int, Opt("--shard-size", help="with --out FOLDER/: files per shard")] = 1000,
    workers: Annotated[Optional[int], Opt("--workers", help="processes that read, align and encode (default: every "
                                          "core for dlib, whose encoder runs one thread; 1 for torch models)")] = None,
    crop: Annotated[str, Opt(help="crop of image files without --detect: recorded (the model's own) | lfw | tight | none | T,L,B,R")] = "recorded",
    model: ModelOpt = "faces-ae",
) -> None:
    """Encode images with MODEL and write their codes with paths and names (embeddings out).

    The file's suffix picks the format (see `facespace.pipelines.export.write`): .npy with a .npy.json sidecar,
    .csv (header path,name[,face,x,y,width,height],z0,...) with a .csv.json sidecar for the model,
    or .parquet (columns path, name, code[, face, box]). A folder (no suffix) gets one .npy shard per
    --shard-size files and a manifest; running the same command again after a kill encodes only the
    missing shards, and files that cannot be read are listed in the manifest with the reason.
    Prints a JSON summary on stdout; photos in which --detect finds no face are named on stderr and counted.
    """
    from facespace.errors import FacespaceError
    from facespace.pipelines.export.formats import codes_format
    from facespace.pipelines.export.write import save_codes
    from facespace.models.registry import resolve_model

    sharded = str(out).endswith(("/", os.sep)) or out.is_dir() or not out.suffix
    if not sharded:
        codes_format(out)  # an unknown format fails before any work
    if batch_size < 1:
        raise FacespaceError(f"--batch-size must be at least 1; got {batch_size}")
    net = resolve_model(str(model))
    detect, detector = detection(detect, detector)
    if sharded:  # a folder of shards and a manifest; a killed job resumes where it stopped
        from facespace.pipelines.export.shards import encode_to_shards

        bar, update = encode_progress("encoding shards")
        with bar:
            manifest = encode_to_shards(net, sources, out, shard_size=shard_size, detect=detect, detector=detector,
                                        crop=crop, batch_size=batch_size, workers=workers, progress=update)
        for why in manifest["failed"].values():
            say(f"failed: {why}")
        rows = sum(s["rows"] for s in manifest["shards"].values())
        say(f"wrote {rows} codes in {len(manifest['shards'])} shard(s) to {out}")
        print_out(json.dumps({"out": str(out), "format": "shards", "count": rows, "shards": len(manifest["shards"]),
                              "files": manifest["files"], "failed": len(manifest["failed"]),
                              "model": _model_name(manifest["model"], model)}))
        return
    bar, update = encode_progress("encoding")
    with bar:
        exported, no_face, n_photos = encode_sources(
            net, sources, detect=detect, detector=detector, batch_size=batch_size, crop=crop, progress=update,
            workers=workers
        )
    for p in no_face:
        say(f"no face found in {p}")
    if len(exported) == 0:
        raise FacespaceError(f"no faces to export: no face found in any of the {n_photos} photo(s); nothing written")
    save_codes(exported.codes, out, sources=exported.sources, names=exported.names, model=exported.model,
               boxes=exported.boxes if detect else None, faces=exported.faces)
    say(f"wrote {len(exported)} codes of size {exported.dim} to {out}")
    summary = {"out": str(out), "format": out.suffix.lower().lstrip("."), "count": len(exported), "dim": exported.dim,
               "images": n_photos, "no_face": len(no_face), "model": _model_name(exported.model, model)}
    print_out(json.dumps(summary))


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands: `encode` at the top level."""
    app.command("encode")(encode_cmd)


def _model_name(record: dict | None, given: str) -> str:
    """What a summary calls the model: its file, its built-in name, or what the user gave."""
    record = record or {}
    return record.get("path") or record.get("builtin") or str(given)

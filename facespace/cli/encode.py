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
    sources: Annotated[list[str], Arg(help="image folders (recursive), image files, .txt lists of image paths or "
                                      "URLs (one a line), URLs (s3://, gs://, https://, file://; through fsspec), "
                                      "or 'embedded'")],
    out: Annotated[Path, Opt("--out", help="codes file: codes.npy (+ codes.npy.json), codes.csv or codes.parquet; "
                             "or a folder (no suffix): shards + manifest.json, resumable after a kill")],
    detect: Annotated[bool, Opt("--detect", help="find the faces in whole photos; one row per face, with its box")] = False,
    detector: DetectorOpt = None,
    batch_size: Annotated[int, Opt("--batch-size", help="images encoded at a time")] = 256,
    shard_size: Annotated[int, Opt("--shard-size", help="with --out FOLDER/: files per shard")] = 1000,
    workers: Annotated[Optional[int], Opt("--workers", help="processes that read, align and encode (default: every "
                                          "core for dlib, whose encoder runs one thread; 1 for torch models)")] = None,
    crop: Annotated[str, Opt(help="crop of image files without --detect: recorded (the model's own) | lfw | tight | none | T,L,B,R")] = "recorded",
    cluster: Annotated[Optional[str], Opt("--cluster", help="with --out FOLDER/: encode the shards on a Dask cluster: "
                                          "local:N (N local workers) or a scheduler address (tcp://host:8786); "
                                          "needs pip install 'facespace[cluster]'")] = None,
    model: ModelOpt = "faces-ae",
) -> None:
    """Encode images with MODEL and write their codes with paths and names (embeddings out).

    The file's suffix picks the format (see `facespace.pipelines.export.write`): .npy with a .npy.json sidecar,
    .csv (header path,name[,face,x,y,width,height],z0,...) with a .csv.json sidecar for the model,
    or .parquet (columns path, name, code[, face, box]). A folder (no suffix) gets one .npy shard per
    --shard-size files and a manifest; running the same command again after a kill encodes only the
    missing shards, and files that cannot be read are listed in the manifest with the reason.
    With --cluster the shards are encoded by the workers of a Dask cluster (each loads the model once;
    the photos and the model must be where the workers can read them) and this process writes the folder,
    the same folder as without --cluster.
    Images given as URLs (or listed in a .txt file) are read through fsspec (pip install fsspec, and the
    store's package: s3fs, gcsfs, ...) and keep their URLs as their paths.
    Prints a JSON summary on stdout; photos in which --detect finds no face are named on stderr and counted.
    """
    from facespace.errors import FacespaceError
    from facespace.pipelines.export.formats import codes_format
    from facespace.pipelines.export.write import save_codes
    from facespace.models.registry import resolve_model

    sharded = str(out).endswith(("/", os.sep)) or out.is_dir() or not out.suffix
    if cluster is not None:
        from facespace.pipelines.export.cluster import engine_modules, parse_cluster

        if not sharded:
            raise FacespaceError(f"--cluster writes a folder of shards; give --out a folder (no suffix), not {out}")
        if workers is not None:
            raise FacespaceError("--workers is for one machine; with --cluster each worker of the cluster is one process "
                                 "(give local:N for N of them)")
        parse_cluster(cluster)
        engine_modules()  # without the extra: the pip command, before any work
    if not sharded:
        codes_format(out)  # an unknown format fails before any work
    if batch_size < 1:
        raise FacespaceError(f"--batch-size must be at least 1; got {batch_size}")
    net = resolve_model(str(model))
    detect, detector = detection(detect, detector)
    if sharded:  # a folder of shards and a manifest; a killed job resumes where it stopped
        from facespace.pipelines.export.shards import encode_to_shards

        if cluster is not None:
            from facespace.pipelines.export.cluster import encode_on_cluster

            bar, update = _rate_progress("encoding shards on the cluster")
            with bar:
                manifest = encode_on_cluster(net, sources, out, cluster=cluster, shard_size=shard_size, detect=detect,
                                             detector=detector, crop=crop, batch_size=batch_size, progress=update)
        else:
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


def _rate_progress(label: str):
    """A progress line on stderr for a whole job: images done of all, images/s since the start, ETA."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from facespace.cli._util import console

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeRemainingColumn(), console=console, disable=not console.is_terminal)
    task = bar.add_task(label, total=None, rate="")
    start: list[tuple[float, int]] = []

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        if not start:  # the first call, before any shard: shards a killed run left done are not this run's speed
            start.append((now, done))
        t0, d0 = start[0]
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
        bar.update(task, completed=done, total=total, rate=f"{rate:.1f} images/s" if rate else "")
        if not console.is_terminal and done > d0:  # a log file gets one line per shard instead of a bar
            eta = f"{(total - done) / rate:.0f} s" if rate else "?"
            say(f"{label}: {done}/{total} images, {rate:.1f} images/s, ETA {eta}")

    return bar, update


def _model_name(record: dict | None, given: str) -> str:
    """What a summary calls the model: its file, its built-in name, or what the user gave."""
    record = record or {}
    return record.get("path") or record.get("builtin") or str(given)

"""CLI commands of the 'search' area: `index build|add|remove|info`, `search`, `duplicates`.

Thin: parse, call `facespace.index` / `facespace.search`, print. Results go to stdout as CSV
(search, duplicates) or one JSON line (index commands); progress and messages to stderr.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from facespace.cli._util import console, say
from facespace.cli._util import out as print_out

Opt = typer.Option
Arg = typer.Argument


def _parse_settings(pairs: list[str]) -> dict[str, Any]:
    """`["ef_search=64", "threads=none"]` -> `{"ef_search": 64, "threads": None}`."""
    from facespace.errors import FacespaceError

    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise FacespaceError(f"--set expects NAME=VALUE, e.g. --set ef_search=64; got {pair!r}")
        value: Any = raw
        if raw.lower() in ("none", "null"):
            value = None
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    pass
        settings[key.replace("-", "_")] = value
    return settings


def _encode_progress(label: str):
    """A rich progress bar on stderr, as an `(done, total)` callback, and the object to close."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _info(index, path: Path) -> dict[str, Any]:
    from facespace.index.store import FORMAT_VERSION

    return {
        "path": str(path),
        "count": len(index),
        "dim": index.dim,
        "metric": index.metric,
        "backend": index.backend,
        "settings": index.settings,
        "model": index.model,
        "format_version": FORMAT_VERSION,
        "bytes": path.stat().st_size if path.exists() else None,
    }


def build_cmd(
    model: Annotated[Path, Arg(help="checkpoint (.safetensors) or run folder")],
    source: Annotated[str, Arg(help="image folder, LFW archive/folder, or 'embedded'")],
    out: Annotated[Path, Opt("--out", help="the index file to write, NAME.index")],
    metric: Annotated[str, Opt(help="cosine | l2 | ip")] = "cosine",
    backend: Annotated[str, Opt(help="exact | lsh | hnsw")] = "exact",
    setting: Annotated[list[str], Opt("--set", help="backend setting NAME=VALUE (repeat), e.g. ef_search=64")] = [],
    batch_size: Annotated[int, Opt("--batch-size", help="images encoded at a time")] = 256,
    crop: Annotated[str, Opt(help="crop of image files: lfw | none")] = "lfw",
) -> None:
    """Encode every image of SOURCE with MODEL and write a search index."""
    from facespace.index import build_index

    bar, update = _encode_progress("encoding")
    with bar:
        index = build_index(
            str(model), source, metric=metric, backend=backend, batch_size=batch_size,
            crop=None if crop == "none" else crop, progress=update, **_parse_settings(setting),
        )  # fmt: skip
    index.save(out)
    say(f"indexed {len(index)} images in {out}")
    print_out(json.dumps(_info(index, out), default=str))


def add_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    sources: Annotated[list[str], Arg(help="image files, or one folder / archive / 'embedded'")],
    model: Annotated[Optional[Path], Opt("--model", help="the index's model (default: the one it records)")] = None,
    batch_size: Annotated[int, Opt("--batch-size")] = 256,
    crop: Annotated[str, Opt(help="crop of image files: lfw | none")] = "lfw",
) -> None:
    """Encode more images with the index's model and add them (the file is rewritten atomically)."""
    import numpy as np

    from facespace.codes import as_images, encode
    from facespace.index import Index
    from facespace.index.build import check_model, encode_faces, index_model, resolve_model

    index = Index.load(index_path)
    net = index_model(index) if model is None else resolve_model(str(model))
    check_model(index, net)
    crop_ = None if crop == "none" else crop
    if len(sources) == 1 and (sources[0] == "embedded" or not Path(sources[0]).is_file()):
        bar, update = _encode_progress("encoding")
        with bar:
            codes, meta = encode_faces(net, sources[0], batch_size=batch_size, crop=crop_, progress=update)
    else:
        codes = encode(net, as_images(net, sources, crop=crop_), batch_size=batch_size)
        meta = [{"path": str(Path(s).resolve()), "name": Path(s).parent.name} for s in sources]
    ids = index.add(np.asarray(codes, np.float32), metadata=meta)
    index.save(index_path)
    say(f"added {len(ids)} images; the index holds {len(index)}")
    print_out(json.dumps({"added": len(ids), "first_id": int(ids[0]) if len(ids) else None, "count": len(index)}))


def remove_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    ids: Annotated[Optional[list[int]], Arg(help="ids to remove")] = None,
    path: Annotated[list[str], Opt("--path", help="remove the items stored with this image path (repeat)")] = [],
) -> None:
    """Remove items by id or by image path (the file is rewritten atomically)."""
    from facespace.errors import FacespaceError
    from facespace.index import Index

    index = Index.load(index_path)
    targets = list(ids or [])
    if path:
        all_ids = index.ids
        by_path: dict[str, list[int]] = {}
        for i, m in zip(all_ids.tolist(), index.get_metadata(all_ids)):
            by_path.setdefault(str(m.get("path")), []).append(i)
        for p in path:
            found = by_path.get(p) or by_path.get(str(Path(p).resolve()))
            if not found:
                raise FacespaceError(f"no item of {index_path} has the path {p!r}; see `facespace search` output for paths")
            targets.extend(found)
    if not targets:
        raise FacespaceError("give ids to remove, or --path PATH")
    removed = index.remove(targets)
    index.save(index_path)
    say(f"removed {removed} items; the index holds {len(index)}")
    print_out(json.dumps({"removed": removed, "count": len(index)}))


def info_cmd(index_path: Annotated[Path, Arg(help="the index file")]) -> None:
    """Print what an index holds and how it was built, as one JSON line."""
    from facespace.index import Index

    print_out(json.dumps(_info(Index.load(index_path), index_path), default=str))


def search_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    images: Annotated[list[str], Arg(help="query image files")],
    k: Annotated[int, Opt("-k", "--k", help="results per query")] = 10,
    model: Annotated[Optional[Path], Opt("--model", help="the index's model (default: the one it records)")] = None,
    montage: Annotated[Optional[Path], Opt("--montage", help="PNG: each query beside its results")] = None,
    crop: Annotated[str, Opt(help="crop of the query images: lfw | none")] = "lfw",
) -> None:
    """Find the K indexed images nearest each query image; print CSV query,rank,path,name,distance."""
    from facespace.codes import as_images
    from facespace.index import Index
    from facespace.index.build import check_model, index_model, resolve_model
    from facespace.search import search

    index = Index.load(index_path)
    net = index_model(index) if model is None else resolve_model(str(model))
    check_model(index, net)
    queries = as_images(net, images, crop=None if crop == "none" else crop)
    results = search(index, queries, k, model=net)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["query", "rank", "path", "name", "distance"])
    for query, hits in zip(images, results):
        for hit in hits:
            writer.writerow([query, hit["rank"], hit.get("path", ""), hit.get("name") or "", f"{hit['distance']:.6g}"])
    if montage is not None:
        from facespace.grid import save_png
        from facespace.search import montage as make_montage
        from facespace.search import result_images

        side = queries.shape[1]
        tiles = result_images(index, results, size=side, model=net)
        save_png(make_montage(queries, tiles, results), montage)
        say(f"montage written to {montage}")


def duplicates_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    max_distance: Annotated[float, Opt("--max-distance", help="largest distance counted as a duplicate")],
) -> None:
    """List groups of near-duplicate images as CSV group,id,path,name."""
    from facespace.index import Index
    from facespace.search import find_duplicates

    index = Index.load(index_path)
    groups = find_duplicates(index, max_distance)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["group", "id", "path", "name"])
    for g, members in enumerate(groups):
        for i, meta in zip(members, index.get_metadata(members)):
            writer.writerow([g, i, meta.get("path", ""), meta.get("name") or ""])
    say(f"{len(groups)} groups of near-duplicates ({sum(map(len, groups))} images) within {max_distance} ({index.metric})")


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    index_app = typer.Typer(help="Build and edit similar-image search indexes.", no_args_is_help=True)
    index_app.command("build")(build_cmd)
    index_app.command("add")(add_cmd)
    index_app.command("remove")(remove_cmd)
    index_app.command("info")(info_cmd)
    app.add_typer(index_app, name="index")
    app.command("search")(search_cmd)
    app.command("duplicates")(duplicates_cmd)


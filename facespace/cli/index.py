"""`facespace index build|add|remove|info|search|duplicates` (and `cluster`, in cluster.py): every
command acts on the index named by its first argument (`build` writes the one named by --out).

Thin: parse, call `facespace.index` / `facespace.pipelines`, print. Results go to stdout as CSV
(search, duplicates) or one JSON line (build, add, remove, info); progress and messages to stderr.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from facespace.cli._util import DetectorOpt, detection, encode_progress, say
from facespace.cli.duplicates import duplicates_cmd
from facespace.files import check_output, locked
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


def _info(index, path: Path) -> dict[str, Any]:
    from facespace.index.store import index_bytes

    return {
        "path": str(path),
        "count": len(index),
        "dim": index.dim,
        "metric": index.metric,
        "backend": index.backend,
        "settings": index.settings,
        "model": index.model,
        "format_version": 2 if index.backend == "ivfpq" else 1,  # 2: a file and its parts folder
        "bytes": index_bytes(path) if path.exists() else None,
    }


def build_cmd(
    out: Annotated[Path, Opt("--out", help="the index file to write, NAME.index")],
    source: Annotated[Optional[list[str]], Arg(help="image folder, LFW archive/folder, or 'embedded'", show_default=False)] = None,
    model: Annotated[Optional[str], Opt("--model", "-m", help="model: a checkpoint (.safetensors), a run folder, "
                                        "or pixels:SIZE[:grey] (not with --codes)")] = None,
    codes: Annotated[Optional[Path], Opt("--codes", help="index exported codes (.npy/.csv/.parquet, or a shard folder "
                                         "from `encode --out FOLDER/`, read shard by shard) instead; no model needed")] = None,
    metric: Annotated[str, Opt(help="cosine | l2 | ip")] = "cosine",
    backend: Annotated[str, Opt(help="exact | lsh | hnsw | ivfpq (vectors on disk, for sets larger than memory)")] = "exact",
    memory: Annotated[Optional[str], Opt("--memory", help="ivfpq: memory budget, e.g. 2GB; picks lists, sub-quantisers "
                                         "and probes (with --codes)")] = None,
    setting: Annotated[list[str], Opt("--set", help="backend setting NAME=VALUE (repeat), e.g. ef_search=64")] = [],
    batch_size: Annotated[int, Opt("--batch-size", help="images encoded at a time")] = 256,
    crop: Annotated[str, Opt(help="crop of image files: recorded (the model's own) | lfw | tight | none | T,L,B,R")] = "recorded",
) -> None:
    """Encode every image of SOURCE with --model and write a search index (or index --codes from `facespace encode`).

    An index built from codes records the model record of the export, so later queries by image
    are still checked against the model that made the codes. `--backend ivfpq --memory 2GB` picks
    its settings from the budget and the number of codes and says what it picked; a shard folder
    is read shard by shard. The index is written once, at the end, atomically.
    """
    from facespace.errors import FacespaceError
    from facespace.pipelines.indexing import build_index

    check_output(out, "index")  # before any encoding: a model, a gallery or a folder there is refused now
    source = list(source or [])
    if model is None and codes is None and len(source) == 2:  # the previous release's `index build MODEL SOURCE`
        model, source = source[0], source[1:]
        say("note: `index build MODEL SOURCE` is now `index build SOURCE --model MODEL`; the old spelling goes "
            "in the next release")
    if len(source) > 1:
        raise FacespaceError(f"give one SOURCE (a folder, an archive or 'embedded'); got {len(source)}: {' '.join(source)}")
    source = source[0] if source else None
    if model is None and codes is None:
        model = "faces-ae"  # the built-in autoencoder: codes for search, morph and decode
    if memory is not None and codes is None:
        raise FacespaceError("--memory sizes an ivfpq index of --codes; give --codes CODES (and --backend ivfpq)")
    if codes is not None:
        if model is not None or source is not None:
            raise FacespaceError("give either SOURCE --model M or --codes FILE, not both")
        from facespace.index.sizing import format_bytes
        from facespace.pipelines.codes_index import build_codes_index

        index, plan = build_codes_index(codes, metric=metric, backend=backend, memory=memory,
                                        **_parse_settings(setting))
        if plan is not None:
            s = index.settings
            say(f"ivfpq for {len(index):,} codes{' within ' + memory if memory else ''}: {s['n_lists']} lists "
                f"({s['quantizer']} quantizer), {s['m']} sub-quantisers ({s['m'] * s['n_bits'] // 8} bytes per code), "
                f"{s['n_probes']} probes, {s['rerank']} re-ranked; about {format_bytes(plan['memory'])} in memory, "
                f"the {format_bytes(plan['raw'])} of raw vectors on disk")
    else:
        if model is None or source is None:
            raise FacespaceError("give SOURCE and --model (e.g. `facespace index build embedded --model runs/pca "
                                 "--out I.index`), or --codes codes.npy")
        bar, update = encode_progress("encoding")
        with bar:
            index = build_index(
                str(model), source, metric=metric, backend=backend, batch_size=batch_size,
                crop=crop, progress=update, **_parse_settings(setting),
            )  # fmt: skip
    index.save(out)
    say(f"indexed {len(index)} {'codes' if codes is not None else 'images'} in {out}")
    print_out(json.dumps(_info(index, out), default=str))


def add_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    sources: Annotated[Optional[list[str]], Arg(help="image files, or one folder / archive / 'embedded'")] = None,
    model: Annotated[Optional[str], Opt("--model", "-m", help="the index's model (default: the one it records)")] = None,
    codes: Annotated[Optional[Path], Opt("--codes", help="add exported codes (.npy/.csv/.parquet) of the index's model")] = None,
    batch_size: Annotated[int, Opt("--batch-size")] = 256,
    crop: Annotated[str, Opt(help="crop of image files: recorded (the model's own) | lfw | tight | none | T,L,B,R")] = "recorded",
    skip_existing: Annotated[bool, Opt("--skip-existing", help="add only items whose path the index does not hold")] = False,
) -> None:
    """Encode more images with the index's model (or take --codes) and add them (the file is rewritten
    atomically, under a lock: two `index add` at once both land)."""
    import numpy as np

    from facespace.data.inputs import as_images
    from facespace.pipelines.codes import encode
    from facespace.errors import FacespaceError
    from facespace.index import Index
    from facespace.index.binding import check_model, index_model
    from facespace.pipelines.indexing import encode_faces
    from facespace.models.registry import resolve_model

    if bool(sources) == (codes is not None):
        raise FacespaceError("give image SOURCES or --codes FILE (one of the two)")
    index = Index.load(index_path)  # read once for its model; read again under the lock to add
    if codes is not None:
        exported = load_codes_for(index, codes)
        codes_, meta = exported.codes, exported.metadata()
    else:
        net = index_model(index) if model is None else resolve_model(str(model))
        check_model(index, net)
        if len(sources) == 1 and (sources[0] == "embedded" or not Path(sources[0]).is_file()):
            bar, update = encode_progress("encoding")
            with bar:
                codes_, meta = encode_faces(net, sources[0], batch_size=batch_size, crop=crop, progress=update)
        else:
            codes_ = encode(net, as_images(net, sources, crop=crop), batch_size=batch_size)
            meta = [{"path": str(Path(s).resolve()), "name": Path(s).parent.name} for s in sources]
    with locked(index_path):  # a second `index add` waits here, then adds to what the first wrote
        index = Index.load(index_path)
        codes_, meta, skipped = _new_items(index, index_path, np.asarray(codes_, np.float32), meta, skip_existing)
        ids = index.add(codes_, metadata=meta) if len(codes_) else np.zeros(0, np.int64)
        index.save(index_path)
    if skipped:
        say(f"skipped {skipped} item(s) already in the index (same path)")
    say(f"added {len(ids)} items; the index holds {len(index)}")
    print_out(json.dumps({"added": len(ids), "first_id": int(ids[0]) if len(ids) else None, "count": len(index),
                          "skipped": skipped}))


def _new_items(index, index_path: Path, codes, meta: list[dict], skip_existing: bool):
    """The items whose path the index does not hold yet; refuses repeats unless `skip_existing`."""
    import numpy as np

    from facespace.errors import FacespaceError

    have = {str(m.get("path")) for m in index.get_metadata(index.ids) if m and m.get("path")} if len(index) else set()
    again = [i for i, m in enumerate(meta) if str(m.get("path")) in have]
    if again and not skip_existing:
        raise FacespaceError(f"{len(again)} of the {len(meta)} item(s) are already in {index_path} (e.g. "
                             f"{meta[again[0]].get('path')}); pass --skip-existing to add only the others (nothing "
                             "was added)")
    keep = np.setdiff1d(np.arange(len(meta)), again)
    return codes[keep], [meta[i] for i in keep], len(again)


def remove_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    ids: Annotated[Optional[list[int]], Arg(help="ids to remove")] = None,
    path: Annotated[list[str], Opt("--path", help="remove the items stored with this image path (repeat)")] = [],
) -> None:
    """Remove items by id or by image path (the file is rewritten atomically, under a lock)."""
    with locked(index_path):
        _remove(index_path, list(ids or []), path)


def _remove(index_path: Path, targets: list[int], path: list[str]) -> None:
    from facespace.errors import FacespaceError
    from facespace.index import Index

    index = Index.load(index_path)
    if path:
        all_ids = index.ids
        by_path: dict[str, list[int]] = {}
        for i, m in zip(all_ids.tolist(), index.get_metadata(all_ids)):
            by_path.setdefault(str(m.get("path")), []).append(i)
        for p in path:
            found = by_path.get(p) or by_path.get(str(Path(p).resolve()))
            if not found:
                raise FacespaceError(f"no item of {index_path} has the path {p!r}; see `facespace index search` output for paths")
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


def load_codes_for(index, path: Path):
    """Exported codes to search or add to `index`, refused when another model made them."""
    from facespace.errors import FacespaceError
    from facespace.pipelines.export.read import load_codes
    from facespace.pipelines.retrieval import same_model

    exported = load_codes(path)
    if not same_model(index.model, exported.model):
        raise FacespaceError(f"{path} holds codes of another model ({(exported.model or {}).get('kind')} "
                             f"{(exported.model or {}).get('path') or ''}) than the index; encode them with "
                             "the index's model")
    return exported


def search_cmd(
    index_path: Annotated[Path, Arg(help="the index file")],
    images: Annotated[Optional[list[str]], Arg(help="query image files (or photos with --detect)")] = None,
    k: Annotated[int, Opt("-k", "--k", help="results per query")] = 10,
    model: Annotated[Optional[str], Opt("--model", "-m", help="the index's model (default: the one it records)")] = None,
    codes: Annotated[Optional[Path], Opt("--codes", help="query by exported codes (.npy/.csv/.parquet); no model needed")] = None,
    detect: Annotated[bool, Opt("--detect", help="find the faces in whole photos; each face is a query (path#k)")] = False,
    detector: DetectorOpt = None,
    montage: Annotated[Optional[Path], Opt("--montage", help="PNG: each query beside its results")] = None,
    crop: Annotated[str, Opt(help="crop of the query images without --detect: recorded (the model's own) | lfw | tight | none")] = "recorded",
) -> None:
    """Find the K indexed images nearest each query; print CSV query,rank,path,name,distance.

    With --detect each face found in a photo is a query named PATH#K; a photo without a face is
    named on stderr ("no face found in ...") and gives no rows; the exit status is 2 only when no
    query at all is left.
    """
    from facespace.data.inputs import as_images
    from facespace.errors import FacespaceError
    from facespace.index import Index
    from facespace.index.binding import check_model, index_model
    from facespace.models.registry import resolve_model
    from facespace.pipelines.retrieval import search

    if bool(images) == (codes is not None):
        raise FacespaceError("give query IMAGE files or --codes FILE (one of the two)")
    index = Index.load(index_path)
    net, queries = None, None
    if codes is not None:
        if montage is not None:
            raise FacespaceError("--montage needs query images; search by IMAGE files to get one")
        exported = load_codes_for(index, codes)
        query, labels = exported.codes, exported.labels()
    else:
        net = index_model(index) if model is None else resolve_model(str(model))
        check_model(index, net)
        detect, detector = detection(detect, detector)
        if detect:
            from facespace.photos.faces import model_crops

            crops = model_crops(net, images, detect=True, detector=detector)
            for p in crops.no_face:
                say(f"no face found in {p}")
            if len(crops) == 0:
                raise FacespaceError(f"no face found in any of the {len(images)} photo(s); nothing to search for")
            queries, labels = crops.images, crops.labels()
        else:
            queries, labels = as_images(net, images, crop=crop), list(images)
        query = queries
    results = search(index, query, k, model=net)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["query", "rank", "path", "name", "distance"])
    for label, hits in zip(labels, results):
        for hit in hits:
            writer.writerow([label, hit["rank"], hit.get("path", ""), hit.get("name") or "", f"{hit['distance']:.6g}"])
    if montage is not None:
        from facespace.grid import save_png
        from facespace.pipelines.retrieval import montage as make_montage
        from facespace.pipelines.retrieval import result_images

        side = queries.shape[1]
        tiles = result_images(index, results, size=side, model=net)
        save_png(make_montage(queries, tiles, results), montage)
        say(f"montage written to {montage}")


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to the `index` noun."""
    index_app = nouns["index"]
    index_app.command("build")(build_cmd)
    index_app.command("add")(add_cmd)
    index_app.command("remove")(remove_cmd)
    index_app.command("info")(info_cmd)
    index_app.command("search")(search_cmd)
    index_app.command("duplicates")(duplicates_cmd)  # facespace/cli/duplicates.py


"""CLI commands of the 'extras' area: decode, calibrate, explain.

Thin: parse, call `facespace.pipelines.codes`, `facespace.people.calibration`, `facespace.pipelines.explanation`, write pictures.
One JSON line on stdout per command; messages on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from facespace.cli._util import out, say
from facespace.errors import FacespaceError

Opt = typer.Option
ModelArg = Annotated[Path, typer.Argument(help="checkpoint (.safetensors) or run folder")]


def _json(obj: dict) -> None:
    out(json.dumps(obj, default=str))


# --- decode -----------------------------------------------------------------------------------


def _index_codes(net: Any, path: Path, ids: list[int]) -> tuple[np.ndarray, list[str]]:
    from facespace.index import Index, check_model

    if not ids:
        raise FacespaceError("pass the index items to decode with --id (e.g. --id 3 --id 7)")
    index = Index.load(path)
    check_model(index, net)
    return index.reconstruct(np.asarray(ids, np.int64)), [f"id {i}" for i in ids]


def _gallery_codes(net: Any, path: Path, names: list[str]) -> tuple[np.ndarray, list[str]]:
    from facespace.people.gallery.gallery import Gallery

    with Gallery(path, net) as g:  # refuses a gallery built with another model
        codes, person, people = g.codes()
    if not names:
        return codes, [people[p] for p in person]
    unknown = [n for n in names if n not in people]
    if unknown:
        raise FacespaceError(f"{', '.join(map(repr, unknown))} not enrolled in {path}; enrolled: "
                             f"{', '.join(people) or 'nobody'} (`facespace people list --gallery {path}`)")
    keep = np.isin(person, [people.index(n) for n in names])
    return codes[keep], [people[p] for p in person[keep]]


def _exported_codes(net: Any, path: Path, rows: list[int]) -> tuple[np.ndarray, list[str]]:
    try:
        from facespace.pipelines.export.read import load_codes
    except ImportError:  # pragma: no cover - the export module ships in the same release
        raise FacespaceError("decoding exported codes needs facespace.pipelines.export.write, which this installation lacks") from None
    from facespace.checkpoint import model_hash, weights_hash

    exported = load_codes(path)
    rec = exported.model or {}
    same = (rec.get("hash") and rec["hash"] == model_hash(net)) or \
        (rec.get("weights_hash") and rec["weights_hash"] == weights_hash(net))
    if not (rec.get("hash") or rec.get("weights_hash")):
        say(f"{path} does not say which model made its codes; decoding them with {getattr(net, 'kind', 'this')} "
            "model unchecked")
    elif not same:
        raise FacespaceError(f"{path} holds codes of another model ({rec.get('kind')} {rec.get('hash')}"
                             f"{', ' + rec['path'] if rec.get('path') else ''}); decode them with that model")
    codes = np.asarray(exported.codes, np.float32)
    labels = [n or s for n, s in zip(exported.names, exported.labels())]
    if not rows:
        return codes, labels
    bad = [r for r in rows if not -len(codes) <= r < len(codes)]
    if bad:
        raise FacespaceError(f"row(s) {bad} not in {path}, which holds {len(codes)} codes (rows 0 to {len(codes) - 1})")
    return codes[rows], [labels[r] for r in rows]


def decode_cmd(
    model: ModelArg,
    index: Annotated[Optional[Path], Opt("--index", help="an index built with this model")] = None,
    ids: Annotated[Optional[list[int]], Opt("--id", help="index item to decode (repeatable)")] = None,
    gallery: Annotated[Optional[Path], Opt("--gallery", help="a gallery built with this model")] = None,
    names: Annotated[Optional[list[str]], Opt("--name", help="gallery person to decode (repeatable; default everyone)")] = None,
    codes: Annotated[Optional[Path], Opt("--codes", help="exported codes (.npy, .csv, .parquet)")] = None,
    rows: Annotated[Optional[list[int]], Opt("--row", help="row of the exported codes (repeatable; default all)")] = None,
    out_path: Annotated[Path, Opt("--out", help="PNG grid of the decoded faces")] = Path("decoded.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 3,
    ncols: Annotated[Optional[int], Opt(help="tiles per row (default: about square)")] = None,
) -> None:
    """Turn stored codes (index items, gallery faces, exported codes) back into faces."""
    from facespace.models.registry import load_model
    from facespace.pipelines.codes import decode
    from facespace.grid import make_grid, save_png
    from facespace.protocol import has_decoder

    given = [name for name, v in (("--index", index), ("--gallery", gallery), ("--codes", codes)) if v is not None]
    if len(given) != 1:
        raise FacespaceError("pass exactly one source of codes: --index I --id N, --gallery G [--name NAME], "
                             f"or --codes FILE [--row R]; got {', '.join(given) or 'none'}")
    if scale < 1:
        raise FacespaceError(f"--scale must be >= 1; got {scale}")
    net = load_model(model)
    if not has_decoder(net):
        decode(net, np.zeros((1, int(net.code_size)), np.float32))  # raises the error naming the model's kind
    if index is not None:
        z, labels = _index_codes(net, index, ids or [])
    elif gallery is not None:
        z, labels = _gallery_codes(net, gallery, names or [])
    else:
        z, labels = _exported_codes(net, codes, rows or [])
    if len(z) == 0:
        raise FacespaceError("no codes to decode; pick items that exist")
    faces = decode(net, z)
    save_png(make_grid(faces, ncols=ncols, scale=scale), out_path)
    say(f"decoded {len(faces)} code(s) from {given[0][2:]} into {out_path}")
    _json({"out": str(out_path), "n": len(faces), "source": given[0][2:], "items": labels})


# --- calibrate --------------------------------------------------------------------------------


def calibrate_cmd(
    model: Annotated[str, typer.Argument(help="checkpoint (.safetensors) or run folder, or pixels[:SIZE]")],
    pairs: Annotated[Optional[Path], Opt("--pairs", help="LFW pairs file, or a CSV path_a,path_b,same[,name_a,name_b]")] = None,
    lfw: Annotated[Optional[Path], Opt("--lfw", help="LFW pairs: the image folder (default: beside the pairs file)")] = None,
    folder: Annotated[Optional[Path], Opt("--folder", help="identities from sub-folders: DIR/<Name>/<images>")] = None,
    seed: Annotated[int, Opt(help="--folder: seed of the different-person sample")] = 0,
    max_same: Annotated[Optional[int], Opt("--max-same", help="--folder: at most this many same-person pairs (sampled)")] = None,
    target_far: Annotated[float, Opt("--target-far", help="false-accept rate the threshold is chosen for")] = 0.01,
    best_accuracy: Annotated[bool, Opt("--best-accuracy", help="choose the threshold of best accuracy instead")] = False,
    metric: Annotated[str, Opt(help="cosine or l2 (with --gallery: the gallery's)")] = "cosine",
    gallery: Annotated[Optional[Path], Opt("--gallery", help="store the threshold in this gallery instead of the model")] = None,
    per_person: Annotated[bool, Opt("--per-person", help="--gallery: also a threshold per enrolled person")] = False,
    curves: Annotated[Optional[Path], Opt("--curves", help="PNG of the false-accept / false-reject curves")] = Path("calibration.png"),
    detect: Annotated[bool, Opt("--detect", help="the images are whole photos: use each one's surest face")] = False,
    dry_run: Annotated[bool, Opt("--dry-run", help="measure and report, store nothing")] = False,
) -> None:
    """Calibrate the same-person threshold on your own labelled pairs; store it with the model or gallery."""
    from facespace.people import calibration as cal
    from facespace.models.registry import resolve_model

    if (pairs is None) == (folder is None):
        raise FacespaceError("pass labelled pairs with --pairs FILE or identities with --folder DIR (one of them)")
    if per_person and gallery is None:
        raise FacespaceError("--per-person thresholds are stored in a gallery; pass --gallery G")
    far = None if best_accuracy else target_far
    if far is not None and not 0.0 <= far < 1.0:
        raise FacespaceError(f"--target-far must be in [0, 1); got {far}")
    if lfw is not None and pairs is None:
        raise FacespaceError("--lfw goes with an LFW --pairs file")
    labelled = cal.read_pair_file(pairs, lfw=lfw) if pairs is not None else cal.folder_pairs(folder, seed=seed, max_same=max_same)
    say(f"{len(labelled)} labelled pairs ({int(labelled.same.sum())} same) from {labelled.source}")
    net = resolve_model(model)
    per: dict[str, dict[str, Any]] = {}
    if gallery is not None:
        from facespace.people.gallery.gallery import Gallery

        with Gallery(gallery, net) as g:
            if metric != g.metric:
                say(f"using the gallery's metric, {g.metric}")
            c, per, no_face = cal.calibrate_gallery(g, labelled, target_far=far, per_person=per_person, detect=detect,
                                                    store=not dry_run)
        stored = None if dry_run else str(gallery)
    else:
        c, no_face = cal.calibrate_pairs(net, labelled, target_far=far, metric=metric, detect=detect)
        stored = None
        if not dry_run:
            from facespace.people.verification import save_threshold

            source = str(pairs if pairs is not None else folder)
            stored = str(save_threshold(net, c.threshold, metric=c.metric, target_far=far, pairs=source,
                                        n_pairs=c.n_genuine + c.n_impostor, accuracy=c.accuracy, far=c.far, frr=c.frr))
    for p in no_face:
        say(f"{p}: no face found; its pairs are left out")
    if curves is not None:
        cal.plot_curves(c, curves, title=f"{Path(str(model)).name} on {Path(labelled.source).name}"
                        + (f", against gallery {gallery.name}" if gallery is not None else ""))
    say(f"threshold {c.threshold:.4f} ({c.metric}): false accepts {c.far:.3%}, false rejects {c.frr:.3%}, "
        f"accuracy {c.accuracy:.3%}" + (f"; stored in {stored}" if stored else "; not stored (--dry-run)" if dry_run else ""))
    result = {**c.summary(), "stored_in": stored, "curves": str(curves) if curves else None, "no_face": no_face}
    if gallery is not None:
        result["per_person"] = per
    _json(result)


# --- explain ----------------------------------------------------------------------------------


def explain_cmd(
    model: ModelArg,
    image_a: Annotated[Path, typer.Argument(help="first face (image file)")],
    image_b: Annotated[Path, typer.Argument(help="second face (image file)")],
    out_path: Annotated[Path, Opt("--out", help="PNG: A | reconstruction A | heatmap | reconstruction B | B")] = Path("explain.png"),
    metric: Annotated[Optional[str], Opt(help="cosine or l2 (default: the calibrated metric, else cosine)")] = None,
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
    detect: Annotated[bool, Opt("--detect", help="the images are whole photos: use each one's surest face")] = False,
) -> None:
    """Explain a match: the two faces, their reconstructions and a difference heatmap, with the verdict."""
    from facespace.models.registry import load_model
    from facespace.cli.generate import photo_face
    from facespace.pipelines.explanation import caption, explain, explanation_picture
    from facespace.grid import save_png
    from facespace.people.verification import stored_threshold

    net = load_model(model)
    metric = metric or (stored_threshold(net) or {}).get("metric", "cosine")
    e = explain(net, photo_face(net, image_a, detect), photo_face(net, image_b, detect), metric=metric)
    save_png(explanation_picture(e, scale=scale), out_path)
    say(f"{caption(e)}; wrote {out_path}")
    _json({"a": str(image_a), "b": str(image_b), "distance": round(e.distance, 6),
           "threshold": None if e.threshold is None else round(e.threshold, 6), "metric": e.metric, "same": e.same,
           "decoder": e.reconstructions is not None, "heat_max": round(float(e.heatmap.max()), 6), "out": str(out_path)})


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("decode")(decode_cmd)
    app.command("calibrate")(calibrate_cmd)
    app.command("explain")(explain_cmd)

"""`facespace generate morph|vary|sample|fill|decode` (and `reconstruct|denoise`, in train.py):
faces drawn from a model's codes.

Thin: parse, call `facespace.pipelines.generation` / `codes`, write pictures. One JSON line on stdout
per command; messages on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from facespace.cli._util import DetectorOpt, ModelOpt, detection, say
from facespace.cli._util import out as print_out
from facespace.errors import FacespaceError

Opt = typer.Option


def _json(obj: dict) -> None:
    print_out(json.dumps(obj, default=str))


def _spread_from(net, data: Optional[str]):
    """Training images to measure code statistics on, when --data is given."""
    if data is None:
        return None
    from facespace.data.load import load_training_faces

    size, _, channels = net.image_shape
    return load_training_faces(data, size=size, grayscale=channels == 1, progress=False)


def morph_cmd(
    image_a: Annotated[Path, typer.Argument(help="first face (image file)")],
    image_b: Annotated[Path, typer.Argument(help="second face (image file)")],
    steps: Annotated[int, Opt(help="images in the strip, both ends included (>= 2)")] = 7,
    out: Annotated[Path, Opt("--out", help="PNG strip")] = Path("morph.png"),
    gif: Annotated[Optional[Path], Opt("--gif", help="also write an animated GIF (there and back)")] = None,
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
    frame_ms: Annotated[int, Opt("--frame-ms", help="GIF: milliseconds per frame")] = 150,
    detect: Annotated[bool, Opt("--detect", help="the images are whole photos: find each one's surest face first")] = False,
    detector: DetectorOpt = None,
    model: ModelOpt = "faces-ae",
) -> None:
    """Morph between two faces through the model's code space; write a strip (and a GIF)."""
    from facespace.models.registry import resolve_model
    from facespace.pipelines.generation import morph
    from facespace.grid import make_grid, save_png

    net = resolve_model(model)
    face_a, face_b = photo_face(net, image_a, detect, detector), photo_face(net, image_b, detect, detector)
    frames = morph(net, face_a, face_b, steps=steps)
    if gif is not None and frame_ms < 1:
        raise FacespaceError(f"--frame-ms must be >= 1; got {frame_ms}")
    save_png(make_grid(frames, ncols=len(frames), scale=scale), out)
    result = {"model": str(model), "out": str(out), "steps": len(frames)}
    if gif is not None:
        save_gif(frames, gif, scale=scale, frame_ms=frame_ms)
        result["gif"] = str(gif)
    say(f"wrote {out}" + (f" and {gif}" if gif else ""))
    _json(result)


def photo_face(model, path: Path, detect: bool, detector: Optional[str] = None):
    """`facespace.photos.faces.face_of_photo`, saying on stderr which face was used of several;
    naming a `detector` means the image is a whole photo."""
    from facespace.photos.faces import face_of_photo

    detect, detector = detection(detect, detector)
    face, note = face_of_photo(model, path, detect=detect, detector=detector)
    if note:
        say(note)
    return face


def save_gif(frames, path: Path, *, scale: int = 4, frame_ms: int = 150) -> Path:
    """Write `(n, H, W, C)` frames in [0, 1] as a looping GIF that plays forward then back."""
    import io

    from PIL import Image

    from facespace.files import write_bytes_atomic
    from facespace.grid import make_grid

    seq = list(frames) + list(frames[-2:0:-1])
    pics = [Image.fromarray(make_grid(f[None], ncols=1, scale=scale, pad=0)) for f in seq]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=frame_ms, loop=0)
    return write_bytes_atomic(path, buf.getvalue())


def vary_cmd(
    image: Annotated[Path, typer.Argument(help="the face (image file)")],
    n: Annotated[int, Opt("-n", help="number of variations")] = 16,
    strength: Annotated[float, Opt(help="noise in std's of the training codes, 0 to 3")] = 0.5,
    seed: Annotated[int, Opt(help="seed of the noise")] = 0,
    data: Annotated[Optional[str], Opt("--data", help="training images to measure the code spread on, when the checkpoint has none")] = None,
    out: Annotated[Path, Opt("--out", help="PNG grid of the variations")] = Path("vary.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 3,
    model: ModelOpt = "faces-ae",
) -> None:
    """Variations of one face: decode codes near its code."""
    from facespace.models.registry import resolve_model
    from facespace.pipelines.generation import vary
    from facespace.grid import make_grid, save_png

    net = resolve_model(model)
    images = vary(net, str(image), n=n, strength=strength, seed=seed, spread=_spread_from(net, data))
    save_png(make_grid(images, scale=scale), out)
    say(f"wrote {out}")
    _json({"model": str(model), "out": str(out), "n": len(images), "strength": strength, "seed": seed})


def sample_cmd(
    n: Annotated[int, Opt("-n", help="number of faces")] = 16,
    seed: Annotated[int, Opt(help="seed of the draws")] = 0,
    temperature: Annotated[float, Opt(help="scale of the draws (1 = the prior)")] = 1.0,
    data: Annotated[Optional[str], Opt("--data", help="plain autoencoders: training images to fit a Gaussian of codes on")] = None,
    out: Annotated[Path, Opt("--out", help="PNG grid")] = Path("samples.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 3,
    model: ModelOpt = "faces-vae",
) -> None:
    """New faces decoded from the prior (a VAE's, or a Gaussian of a plain autoencoder's codes)."""
    from facespace.models.registry import resolve_model
    from facespace.pipelines.codes import encode
    from facespace.pipelines.generation import sample
    from facespace.grid import make_grid, save_png

    net = resolve_model(model)
    faces = _spread_from(net, data)
    codes = None if faces is None else encode(net, faces.images)
    images = sample(net, n, seed, temperature=temperature, codes=codes)
    save_png(make_grid(images, scale=scale), out)
    say(f"wrote {out}")
    _json({"model": str(model), "out": str(out), "n": len(images), "seed": seed, "temperature": temperature})


def parse_box(text: str, side: int) -> tuple[int, int, int, int]:
    """`"x0,y0,x1,y1"` in pixels of the model's input, or fractions of its side when written with a '.'."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise FacespaceError(f"--box must be x0,y0,x1,y1 (e.g. 8,18,24,28); got {text!r}")
    if any("." in p for p in parts):  # fractions of the side
        values = [v * side for v in values]
    return tuple(int(round(v)) for v in values)  # type: ignore[return-value]


def fill_cmd(
    image: Annotated[Path, typer.Argument(help="the face (image file)")],
    box: Annotated[str, Opt("--box", help="x0,y0,x1,y1: pixels of the model's input (e.g. 0..32), or fractions like 0.25,0.6,0.75,0.85")],
    iterations: Annotated[int, Opt(help="reconstruct / restore rounds")] = 50,
    out: Annotated[Path, Opt("--out", help="PNG: original | occluded | filled")] = Path("fill.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
    model: ModelOpt = "faces-denoise",
) -> None:
    """Hide a box of a face and reconstruct it from the rest; write a before/after strip."""
    import numpy as np

    from facespace.models.registry import resolve_model
    from facespace.data.inputs import as_images
    from facespace.pipelines.generation import box_mask, fill_in
    from facespace.grid import make_grid, save_png

    net = resolve_model(model)
    h, w, _ = net.image_shape
    corners = parse_box(box, w)
    mask = box_mask((h, w), corners)
    x = as_images(net, [str(image)])[0]
    filled = fill_in(net, x, mask, iterations=iterations)
    occluded = np.where(mask[..., None], 0.0, x)
    save_png(make_grid(np.stack([x, occluded, filled]), ncols=3, scale=scale), out)
    err = float(np.mean((filled - x)[mask] ** 2))
    say(f"wrote {out}")
    _json({"model": str(model), "out": str(out), "box": list(corners), "masked_mse": err})


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

    with Gallery(path, net, create=False) as g:  # refuses a gallery built with another model
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
    index: Annotated[Optional[Path], Opt("--index", help="an index built with this model")] = None,
    ids: Annotated[Optional[list[int]], Opt("--id", help="index item to decode (repeatable)")] = None,
    gallery: Annotated[Optional[Path], Opt("--gallery", help="a gallery built with this model")] = None,
    names: Annotated[Optional[list[str]], Opt("--name", help="gallery person to decode (repeatable; default everyone)")] = None,
    codes: Annotated[Optional[Path], Opt("--codes", help="exported codes (.npy, .csv, .parquet)")] = None,
    rows: Annotated[Optional[list[int]], Opt("--row", help="row of the exported codes (repeatable; default all)")] = None,
    out_path: Annotated[Path, Opt("--out", help="PNG grid of the decoded faces")] = Path("decoded.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 3,
    ncols: Annotated[Optional[int], Opt(help="tiles per row (default: about square)")] = None,
    model: ModelOpt = "faces-ae",
) -> None:
    """Turn stored codes (index items, gallery faces, exported codes) back into faces."""
    from facespace.models.registry import resolve_model
    from facespace.pipelines.codes import decode
    from facespace.grid import make_grid, save_png
    from facespace.protocol import has_decoder

    given = [name for name, v in (("--index", index), ("--gallery", gallery), ("--codes", codes)) if v is not None]
    if len(given) != 1:
        raise FacespaceError("pass exactly one source of codes: --index I --id N, --gallery G [--name NAME], "
                             f"or --codes FILE [--row R]; got {', '.join(given) or 'none'}")
    if scale < 1:
        raise FacespaceError(f"--scale must be >= 1; got {scale}")
    net = resolve_model(model)
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
    _json({"model": str(model), "out": str(out_path), "n": len(faces), "source": given[0][2:], "items": labels})


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to the `generate` noun."""
    generate = nouns["generate"]
    generate.command("morph")(morph_cmd)
    generate.command("vary")(vary_cmd)
    generate.command("sample")(sample_cmd)
    generate.command("fill")(fill_cmd)
    generate.command("decode")(decode_cmd)

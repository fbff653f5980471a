"""CLI commands of the 'generate' area: morph, vary, sample, fill.

Thin: parse, call `facespace.pipelines.generation`, write pictures. One JSON line on stdout per command;
messages on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from facespace.cli._util import out as print_out
from facespace.cli._util import say
from facespace.errors import FacespaceError

Opt = typer.Option
ModelArg = Annotated[Path, typer.Argument(help="checkpoint (.safetensors) or run folder")]


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
    model: ModelArg,
    image_a: Annotated[Path, typer.Argument(help="first face (image file)")],
    image_b: Annotated[Path, typer.Argument(help="second face (image file)")],
    steps: Annotated[int, Opt(help="images in the strip, both ends included (>= 2)")] = 7,
    out: Annotated[Path, Opt("--out", help="PNG strip")] = Path("morph.png"),
    gif: Annotated[Optional[Path], Opt("--gif", help="also write an animated GIF (there and back)")] = None,
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
    frame_ms: Annotated[int, Opt("--frame-ms", help="GIF: milliseconds per frame")] = 150,
    detect: Annotated[bool, Opt("--detect", help="the images are whole photos: find each one's surest face first")] = False,
) -> None:
    """Morph between two faces through the model's code space; write a strip (and a GIF)."""
    from facespace.models.registry import load_model
    from facespace.pipelines.generation import morph
    from facespace.grid import make_grid, save_png

    net = load_model(model)
    face_a, face_b = photo_face(net, image_a, detect), photo_face(net, image_b, detect)
    frames = morph(net, face_a, face_b, steps=steps)
    if gif is not None and frame_ms < 1:
        raise FacespaceError(f"--frame-ms must be >= 1; got {frame_ms}")
    save_png(make_grid(frames, ncols=len(frames), scale=scale), out)
    result = {"out": str(out), "steps": len(frames)}
    if gif is not None:
        save_gif(frames, gif, scale=scale, frame_ms=frame_ms)
        result["gif"] = str(gif)
    say(f"wrote {out}" + (f" and {gif}" if gif else ""))
    _json(result)


def photo_face(model, path: Path, detect: bool):
    """What a command that takes one face per file uses: the path as it is, or with `detect` the
    surest face found in the photo as an `(H, W, C)` crop at the model's shape.

    Several faces: the surest is used and stderr says so. None: a `FacespaceError` naming the photo.
    """
    if not detect:
        return str(path)
    from facespace.photos.faces import crops_from_photos

    size, _, channels = model.image_shape
    crops = crops_from_photos([path], size=size, grayscale=channels == 1, detect=True)
    if crops.no_face:
        raise FacespaceError(f"no face found in {path}; use a photo where the face is upright and clearly visible, "
                             "or pass a cropped face without --detect")
    if len(crops) > 1:
        x, y, w, h = crops.boxes[0]
        say(f"{path}: {len(crops)} faces found; using the surest, face 0 at x={x} y={y} {w}x{h}")
    return crops.images[0]


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
    model: ModelArg,
    image: Annotated[Path, typer.Argument(help="the face (image file)")],
    n: Annotated[int, Opt("-n", help="number of variations")] = 16,
    strength: Annotated[float, Opt(help="noise in std's of the training codes, 0 to 3")] = 0.5,
    seed: Annotated[int, Opt(help="seed of the noise")] = 0,
    data: Annotated[Optional[str], Opt("--data", help="training images to measure the code spread on, when the checkpoint has none")] = None,
    out: Annotated[Path, Opt("--out", help="PNG grid of the variations")] = Path("vary.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 3,
) -> None:
    """Variations of one face: decode codes near its code."""
    from facespace.models.registry import load_model
    from facespace.pipelines.generation import vary
    from facespace.grid import make_grid, save_png

    net = load_model(model)
    images = vary(net, str(image), n=n, strength=strength, seed=seed, spread=_spread_from(net, data))
    save_png(make_grid(images, scale=scale), out)
    say(f"wrote {out}")
    _json({"out": str(out), "n": len(images), "strength": strength, "seed": seed})


def sample_cmd(
    model: ModelArg,
    n: Annotated[int, Opt("-n", help="number of faces")] = 16,
    seed: Annotated[int, Opt(help="seed of the draws")] = 0,
    temperature: Annotated[float, Opt(help="scale of the draws (1 = the prior)")] = 1.0,
    data: Annotated[Optional[str], Opt("--data", help="plain autoencoders: training images to fit a Gaussian of codes on")] = None,
    out: Annotated[Path, Opt("--out", help="PNG grid")] = Path("samples.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 3,
) -> None:
    """New faces decoded from the prior (a VAE's, or a Gaussian of a plain autoencoder's codes)."""
    from facespace.models.registry import load_model
    from facespace.pipelines.codes import encode
    from facespace.pipelines.generation import sample
    from facespace.grid import make_grid, save_png

    net = load_model(model)
    faces = _spread_from(net, data)
    codes = None if faces is None else encode(net, faces.images)
    images = sample(net, n, seed, temperature=temperature, codes=codes)
    save_png(make_grid(images, scale=scale), out)
    say(f"wrote {out}")
    _json({"out": str(out), "n": len(images), "seed": seed, "temperature": temperature})


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
    model: ModelArg,
    image: Annotated[Path, typer.Argument(help="the face (image file)")],
    box: Annotated[str, Opt("--box", help="x0,y0,x1,y1: pixels of the model's input (e.g. 0..32), or fractions like 0.25,0.6,0.75,0.85")],
    iterations: Annotated[int, Opt(help="reconstruct / restore rounds")] = 50,
    out: Annotated[Path, Opt("--out", help="PNG: original | occluded | filled")] = Path("fill.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
) -> None:
    """Hide a box of a face and reconstruct it from the rest; write a before/after strip."""
    import numpy as np

    from facespace.models.registry import load_model
    from facespace.data.inputs import as_images
    from facespace.pipelines.generation import box_mask, fill_in
    from facespace.grid import make_grid, save_png

    net = load_model(model)
    h, w, _ = net.image_shape
    corners = parse_box(box, w)
    mask = box_mask((h, w), corners)
    x = as_images(net, [str(image)])[0]
    filled = fill_in(net, x, mask, iterations=iterations)
    occluded = np.where(mask[..., None], 0.0, x)
    save_png(make_grid(np.stack([x, occluded, filled]), ncols=3, scale=scale), out)
    err = float(np.mean((filled - x)[mask] ** 2))
    say(f"wrote {out}")
    _json({"out": str(out), "box": list(corners), "masked_mse": err})


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("morph")(morph_cmd)
    app.command("vary")(vary_cmd)
    app.command("sample")(sample_cmd)
    app.command("fill")(fill_cmd)

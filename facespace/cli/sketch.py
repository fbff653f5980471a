"""CLI commands of the 'sketch' area: `sketch synth|train|reconstruct|cluster`.

Thin: parse, call `facespace.pipelines.sketches` and the readers, print. Results go to stdout as one JSON
line (synth, train, reconstruct) or CSV `index,cluster` (cluster); progress to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from facespace.cli._util import out, say

Opt = typer.Option

sketch_app = typer.Typer(help="Stroke sketches (QuickDraw, Sketch-RNN): train, reconstruct, cluster.", no_args_is_help=True)


def _load(data: Path, split: str, strict: bool, limit: Optional[int]):
    from facespace.data.sketch_formats import load_sketches

    sk = load_sketches(data, split=split, strict=strict, limit=limit)
    if sk.skipped:
        say(f"skipped {sk.skipped} malformed drawing(s) in {data} (use --strict to stop at the first)")
    if len(sk) == 0:
        from facespace.errors import DataError

        raise DataError(f"{data} holds no usable sketches in split {split!r}")
    return sk


@sketch_app.command("synth")
def synth_cmd(
    out_path: Annotated[Path, Opt("--out", help="the .npz file to write (Sketch-RNN layout + labels)")],
    n: Annotated[int, Opt(help="faces in train; valid and test get a tenth each")] = 2000,
    seed: Annotated[int, Opt(help="random seed")] = 0,
) -> None:
    """Write synthetic face sketches with known parts (eyes, mouth, ...) as a Sketch-RNN .npz."""
    from facespace.data.sketch_formats import write_npz
    from facespace.data.sketch_synth import make_face_sketches

    m = max(1, n // 10)
    splits = {"train": make_face_sketches(n, seed=seed), "valid": make_face_sketches(m, seed=seed + 1),
              "test": make_face_sketches(m, seed=seed + 2)}
    write_npz(out_path, splits)
    out(json.dumps({"path": str(out_path), **{k: len(v) for k, v in splits.items()}}))


@sketch_app.command("train")
def train_cmd(
    data: Annotated[Path, Opt("--data", help="sketches: Sketch-RNN .npz, QuickDraw .ndjson or .bin")],
    out_dir: Annotated[Path, Opt("--out", help="run folder (best.safetensors, metrics.csv, samples.png)")] = Path("runs/sketch"),
    epochs: Annotated[int, Opt(help="passes over the training data")] = 10,
    batch_size: Annotated[int, Opt(help="sketches per step")] = 64,
    lr: Annotated[float, Opt(help="peak learning rate (one-cycle schedule)")] = 2e-3,
    code_size: Annotated[int, Opt(help="length of a code")] = 50,
    cell: Annotated[str, Opt(help="gru | lstm")] = "gru",
    enc_hidden: Annotated[int, Opt(help="encoder units per direction")] = 64,
    dec_hidden: Annotated[int, Opt(help="decoder units")] = 128,
    output: Annotated[str, Opt(help="offsets loss: mse | mdn (mixture of Gaussians)")] = "mse",
    readout: Annotated[str, Opt(help="code from: pool (all steps) | last (final states)")] = "pool",
    fit_box: Annotated[bool, Opt("--fit-box/--no-fit-box", help="scale each sketch to a unit box first")] = True,
    max_len: Annotated[int, Opt(help="longer sketches are left out")] = 250,
    limit: Annotated[Optional[int], Opt(help="use only the first N training sketches")] = None,
    strict: Annotated[bool, Opt(help="stop at the first malformed line/record instead of skipping it")] = False,
    threads: Annotated[Optional[int], Opt(help="torch CPU threads")] = None,
    seed: Annotated[int, Opt(help="random seed")] = 0,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="progress bar on stderr")] = True,
) -> None:
    """Train a sketch autoencoder. Prints one JSON line: the checkpoint and its losses."""
    from facespace.errors import FacespaceError
    from facespace.pipelines.sketches import train_sketches

    train = _load(data, "train", strict, limit)
    val = None
    if data.suffix.lower() == ".npz":
        try:
            val = _load(data, "valid", strict, None)
        except FacespaceError:  # a file without a valid split trains without validation
            say(f"{data} has no usable 'valid' split; training without validation")
    say(f"training on {len(train)} sketches" + (f", validating on {len(val)}" if val else ""))
    model = train_sketches(
        train, val=val, out=out_dir, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, threads=threads,
        progress=progress, code_size=code_size, cell=cell, enc_hidden=enc_hidden, dec_hidden=dec_hidden,
        output=output, readout=readout, fit_box=fit_box, max_len=max_len,
    )
    info = model.checkpoint_info
    out(json.dumps({"model": info.get("path"), "best_val_loss": info.get("best_val_loss"), "step": info.get("step")}))


@sketch_app.command("reconstruct")
def reconstruct_cmd(
    model_path: Annotated[Path, Opt("--model", help="sketch checkpoint or run folder")],
    data: Annotated[Path, Opt("--data", help="sketch file")],
    out_path: Annotated[Path, Opt("--out", help="grid PNG: originals over reconstructions")] = Path("reconstructions.png"),
    split: Annotated[str, Opt(help="npz split: train | valid | test")] = "test",
    n: Annotated[int, Opt(help="sketches in the grid")] = 16,
    svg_dir: Annotated[Optional[Path], Opt(help="also write each reconstruction as an SVG here")] = None,
    strict: Annotated[bool, Opt(help="stop at the first malformed line/record")] = False,
) -> None:
    """Draw sketches back from their codes. Prints one JSON line with the teacher-forced loss."""
    from facespace.models.registry import load_model
    from facespace.grid import save_png
    from facespace.data.sketch_draw import pairs_grid, save_sketch_svg

    model = load_model(model_path, kind="sketch")
    sk = _load(data, split, strict, None)
    shown = sk.strokes[: max(1, n)]
    recon = model.reconstruct(shown)
    save_png(pairs_grid(shown, recon, ncols=min(8, len(shown))), out_path)
    if svg_dir is not None:
        for i, s in enumerate(recon):
            save_sketch_svg(s, Path(svg_dir) / f"reconstruction_{i:03d}.svg")
    loss = model.evaluate(sk.strokes)
    out(json.dumps({"grid": str(out_path), "n": len(sk), **loss}))


@sketch_app.command("cluster")
def cluster_cmd(
    model_path: Annotated[Path, Opt("--model", help="sketch checkpoint or run folder")],
    data: Annotated[Path, Opt("--data", help="sketch file")],
    gallery: Annotated[Optional[Path], Opt("--gallery", help="write one grid PNG per cluster here")] = None,
    method: Annotated[str, Opt(help="dbscan | hdbscan")] = "hdbscan",
    split: Annotated[str, Opt(help="npz split: train | valid | test")] = "test",
    eps: Annotated[Optional[float], Opt(help="DBSCAN radius (standardised codes); default: k-distance knee")] = None,
    min_samples: Annotated[int, Opt(help="core-point neighbourhood size")] = 5,
    min_cluster_size: Annotated[int, Opt(help="HDBSCAN's smallest cluster")] = 10,
    limit: Annotated[Optional[int], Opt(help="cluster only the first N sketches")] = None,
    strict: Annotated[bool, Opt(help="stop at the first malformed line/record")] = False,
) -> None:
    """Cluster sketches by their codes. Prints CSV `index,cluster` (-1 = noise)."""
    from facespace.models.registry import load_model
    from facespace.pipelines.sketches import cluster_sketches, write_cluster_gallery

    model = load_model(model_path, kind="sketch")
    sk = _load(data, split, strict, limit)
    labels = cluster_sketches(model.encode(sk), method, eps=eps, min_samples=min_samples, min_cluster_size=min_cluster_size)
    say(f"{labels.max() + 1} clusters, {(labels < 0).sum()} of {len(labels)} sketches noise")
    if gallery is not None:
        paths = write_cluster_gallery(sk, labels, gallery)
        say(f"wrote {len(paths)} grids to {gallery}")
    out("index,cluster")
    for i, c in enumerate(labels.tolist()):
        out(f"{i},{c}")


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""
    app.add_typer(sketch_app, name="sketch")

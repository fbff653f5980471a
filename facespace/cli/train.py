"""`facespace train KIND` (every kind, the verifier included), and what measures a trained
autoencoder: `models evaluate`, `generate reconstruct`, `generate denoise`.

Thin: parse, call `facespace.training.recipes.train` / `facespace.pipelines.codes`, print. One JSON line on stdout per
command; progress and messages on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from facespace.cli._util import ModelOpt, say
from facespace.cli._util import out as print_out

Opt = typer.Option


def _json(obj: dict) -> None:
    print_out(json.dumps(obj, default=str))


# loop options whose default depends on the kind: (autoencoders, verifier)
KIND_DEFAULTS = {
    "code_size": (32, 128), "width": (32, 16), "batch_size": (64, 128), "lr": (1e-3, 3e-3),
    "optimizer": ("adam", "adamw"), "schedule": ("none", "onecycle"), "weight_decay": (0.0, 0.05), "grad_clip": (1.0, 5.0),
}  # fmt: skip


def _blocks(text: str) -> tuple[int, ...]:
    from facespace.errors import FacespaceError

    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise FacespaceError(f"--blocks {text!r}: expected residual blocks per stage, e.g. 1,2,2,1") from None


def train_cmd(
    kind: Annotated[str, typer.Argument(help="pca | linear | conv | denoise | vae | verifier")],
    data: Annotated[str, Opt("--data", help="image folder, LFW archive/folder, or 'embedded' (verifier: <person>/<image> folders)")] = "embedded",
    out: Annotated[Optional[Path], Opt("--out", help="run folder (checkpoints, metrics, plots)")] = None,
    size: Annotated[int, Opt(help="image side (conv: a multiple of 16; verifier: of 2**stages)")] = 32,
    crop: Annotated[str, Opt(help="how faces are cut from files, recorded in the model: tight | lfw | none | T,L,B,R")] = "lfw",
    code_size: Annotated[Optional[int], Opt("--code-size", help="length of a code [default: 32; verifier 128]")] = None,
    epochs: Annotated[int, Opt(help="passes over the training images")] = 10,
    grayscale: Annotated[bool, Opt(help="train on grey images")] = False,
    arch: Annotated[str, Opt(help="conv architecture: seed | bn | res")] = "seed",
    code_activation: Annotated[str, Opt("--code-activation", help="relu | linear")] = "relu",
    width: Annotated[Optional[int], Opt(help="channels of the first stage [default: 32; verifier 16]")] = None,
    depth: Annotated[int, Opt(help="convolutions per stage (arch bn) or residual blocks per stage (arch res)")] = 1,
    refine_steps: Annotated[int, Opt("--refine-steps", help="conv: Adam steps refining each code through the decoder at encode time (slower encoding, lower error)")] = 0,
    blocks: Annotated[str, Opt(help="verifier: residual blocks per stage (each stage halves the side)")] = "1,2,2,1",
    margin: Annotated[float, Opt(help="verifier: CosFace margin")] = 0.35,
    dropout: Annotated[float, Opt(help="verifier: dropout before the embedding layer")] = 0.2,
    shift_test: Annotated[int, Opt("--shift-test", help="verifier: also embed copies shifted this many pixels (test time)")] = 0,
    pca_skip: Annotated[bool, Opt("--pca-skip", help="add a fixed PCA path the conv net corrects")] = False,
    flip: Annotated[bool, Opt(help="random horizontal flips while training")] = False,
    augment: Annotated[Optional[str], Opt(help="random shifts/rotations/zooms/light/grey while training, as name=value "
                                               "pairs, e.g. max_shift=0.04,max_rotation=5,share=0.5 or grey=0.25 (others at "
                                               "their defaults), default or none [default: none; verifier: default]")] = None,
    noise: Annotated[str, Opt(help="denoise: corruption, e.g. gaussian:0.1 or gaussian:0.1+rect:1")] = "gaussian:0.1",
    beta: Annotated[float, Opt(help="vae: weight of the KL term against the summed squared error per image")] = 0.1,
    test: Annotated[float, Opt(help="held-out test fraction")] = 0.1,
    val: Annotated[float, Opt(help="validation fraction of the training part")] = 0.05,
    split_seed: Annotated[int, Opt("--split-seed", help="seed of the test/validation split")] = 42,
    batch_size: Annotated[Optional[int], Opt("--batch-size", help="[default: 64; verifier 128]")] = None,
    lr: Annotated[Optional[float], Opt(help="learning rate (peak, for onecycle) [default: 1e-3; verifier 3e-3]")] = None,
    optimizer: Annotated[Optional[str], Opt(help="adam | adamax | adamw [default: adam; verifier adamw]")] = None,
    schedule: Annotated[Optional[str], Opt(help="none | onecycle | cosine [default: none; verifier onecycle]")] = None,
    weight_decay: Annotated[Optional[float], Opt("--weight-decay", help="[default: 0; verifier 0.05]")] = None,
    grad_clip: Annotated[Optional[float], Opt("--grad-clip", help="max gradient norm [default: 1; verifier 5]")] = None,
    patience: Annotated[Optional[int], Opt(help="early stopping: epochs without improvement")] = None,
    seed: Annotated[int, Opt(help="training seed")] = 0,
    threads: Annotated[Optional[int], Opt(help="torch CPU threads")] = None,
    val_every: Annotated[int, Opt("--val-every")] = 1,
    log_every: Annotated[int, Opt("--log-every")] = 50,
    channels_last: Annotated[bool, Opt("--channels-last", help="channels-last memory format")] = False,
    bf16: Annotated[bool, Opt(help="bfloat16 autocast")] = False,
    resume: Annotated[bool, Opt(help="continue the run in --out")] = False,
    overwrite: Annotated[bool, Opt("--overwrite", help="replace the run already in --out")] = False,
    svd_solver: Annotated[str, Opt("--svd-solver", help="pca: auto | full | randomized")] = "auto",
) -> None:
    """Train a model (pca | linear | conv | denoise | vae | verifier) and write its run folder."""
    from facespace.errors import FacespaceError
    from facespace.training.recipes import train

    given = dict(code_size=code_size, width=width, batch_size=batch_size, lr=lr, optimizer=optimizer,
                 schedule=schedule, weight_decay=weight_decay, grad_clip=grad_clip)
    d = {k: (v if v is not None else KIND_DEFAULTS[k][kind == "verifier"]) for k, v in given.items()}
    options = dict(size=size, grayscale=grayscale, crop=crop, seed=seed, progress=True, overwrite=overwrite)
    loop = dict(batch_size=d["batch_size"], lr=d["lr"], optimizer=d["optimizer"], schedule=d["schedule"],
                weight_decay=d["weight_decay"], grad_clip=d["grad_clip"], patience=patience, threads=threads,
                val_every=val_every, log_every=log_every, channels_last=channels_last, bf16=bf16)
    if kind == "verifier":
        if resume or flip:
            raise FacespaceError("--resume and --flip do not apply to kind verifier (it flips, shifts and rotates on its own)")
        options.update(loop, width=d["width"], blocks=_blocks(blocks), margin=margin, dropout=dropout, shift_test=shift_test)
        if augment is not None:
            options["augment"] = augment
    elif kind == "pca":
        options.update(test=test, val=val, split_seed=split_seed, svd_solver=svd_solver)
    else:
        options.update(loop, test=test, val=val, split_seed=split_seed, resume=resume, flip=flip, augment=augment or "none")
        if kind in ("conv", "denoise"):
            options.update(arch=arch, code_activation=code_activation, width=d["width"], depth=depth, pca_skip=pca_skip,
                           refine_steps=refine_steps)
        if kind == "denoise":
            options["noise"] = noise
        if kind == "vae":
            options.update(arch=arch, width=d["width"], depth=depth, beta=beta)
    model = train(kind, data, out=out, code_size=d["code_size"], epochs=epochs, **options)
    summary = {"kind": kind, "out": str(out) if out else None, "code_size": model.code_size}
    if out is not None and (Path(out) / "run.json").exists():
        info = json.loads((Path(out) / "run.json").read_text())
        keys = ("heldout_mse", "heldout_psnr", "train_mse", "best_val_loss", "epochs_run", "train_seconds")
        if kind == "verifier":
            keys = ("crop", "n_images", "people", "trained_people", "best_val_loss", "epochs_run", "train_seconds")
            say(f"trained verifier on {info['trained_images']} images of {info['trained_people']} people "
                f"(crop {info['crop']}), run folder {out}")
        else:
            mse = (f"held-out MSE {info['heldout_mse']:.5f}" if "heldout_mse" in info
                   else f"MSE on its training images {info['train_mse']:.5f} (no test part)")
            say(f"trained {kind}: {mse}, run folder {out}")
        summary.update({k: info[k] for k in keys if k in info})
    _json(summary)


def reconstruct_cmd(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    out: Annotated[Path, Opt("--out", help="PNG: originals over reconstructions")] = Path("reconstructions.png"),
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 2,
    model: ModelOpt = "faces-ae",
) -> None:
    """Pass images through a model's code and back; write originals over reconstructions."""
    import numpy as np

    from facespace.models.registry import resolve_model
    from facespace.data.inputs import as_images
    from facespace.training.metrics import mse_psnr
    from facespace.pipelines.codes import reconstruct
    from facespace.grid import make_grid, save_png

    net = resolve_model(model)
    x = as_images(net, [str(p) for p in images])
    recon = reconstruct(net, x)
    save_png(make_grid(np.concatenate([x, recon]), ncols=len(x), scale=scale), out)
    mse, psnr = mse_psnr(x, recon)
    say(f"wrote {out}")
    _json({"model": str(model), "out": str(out), "n": len(x), "mse": mse, "psnr": psnr})


def denoise_cmd(
    image: Annotated[Path, typer.Argument(help="an image file")],
    noise: Annotated[str, Opt(help="corruption to add first, e.g. gaussian:0.1; 'none' for an already noisy image")] = "gaussian:0.1",
    out: Annotated[Path, Opt("--out", help="PNG: input | corrupted | denoised")] = Path("denoised.png"),
    seed: Annotated[int, Opt(help="seed of the corruption")] = 0,
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
    model: ModelOpt = "faces-denoise",
) -> None:
    """Corrupt an image, pass it through a model, and write input, corrupted and denoised side by side."""
    import numpy as np

    from facespace.models.registry import resolve_model
    from facespace.data.inputs import as_images
    from facespace.training.metrics import mse_psnr
    from facespace.pipelines.codes import reconstruct
    from facespace.data.corruptions import parse_corruption
    from facespace.grid import make_grid, save_png

    corruption = parse_corruption(noise)
    net = resolve_model(model)
    x = as_images(net, [str(image)])
    noisy = corruption.apply(x, seed=seed)
    clean = reconstruct(net, noisy)
    tiles = [x, np.clip(noisy, 0, 1), clean] if not corruption.is_identity else [x, clean]
    save_png(make_grid(np.concatenate(tiles), ncols=len(tiles), scale=scale), out)
    result = {"model": str(model), "out": str(out), "noise": corruption.spec(), "denoised_mse": mse_psnr(x, clean)[0]}
    if not corruption.is_identity:
        result["noisy_mse"] = mse_psnr(x, noisy)[0]
    say(f"wrote {out}")
    _json(result)


def evaluate_cmd(
    data: Annotated[str, Opt("--data", help="the source the model was trained on")] = "embedded",
    test: Annotated[Optional[float], Opt(help="test fraction (default: the one recorded at training)")] = None,
    split_seed: Annotated[Optional[int], Opt("--split-seed", help="split seed (default: recorded)")] = None,
    noise: Annotated[Optional[str], Opt(help="also score denoising of inputs with this corruption")] = None,
    seed: Annotated[int, Opt(help="seed of the corruption")] = 0,
    model: ModelOpt = "faces-ae",
) -> None:
    """Print test-split MSE and PSNR of a model as one JSON line."""
    from facespace.models.registry import resolve_model
    from facespace.training.metrics import mse_psnr
    from facespace.pipelines.codes import reconstruct
    from facespace.data.corruptions import parse_corruption
    from facespace.data.load import load_training_faces
    from facespace.data.splits import split_faces

    net = resolve_model(model)
    split = net.checkpoint_info.get("extra", {}).get("split", {})
    test = split.get("test", 0.1) if test is None else test
    split_seed = split.get("split_seed", 42) if split_seed is None else split_seed
    from facespace.data.crops import model_crop

    size, _, channels = net.image_shape
    faces = load_training_faces(data, size=size, grayscale=channels == 1, crop=model_crop(net))
    _, held = split_faces(faces, test=test, seed=split_seed)
    if len(held) == 0:
        held = faces
    mse, psnr = mse_psnr(held.images, reconstruct(net, held.images))
    result = {"model": str(model), "kind": net.kind, "n_test": len(held), "mse": mse, "psnr": psnr}
    if noise:
        c = parse_corruption(noise)
        noisy = c.apply(held.images, seed=seed)
        result.update(noise=c.spec(), noisy_mse=mse_psnr(held.images, noisy)[0])
        result["denoised_mse"], result["denoised_psnr"] = mse_psnr(held.images, reconstruct(net, noisy))
    say(f"test MSE {mse:.5f}, PSNR {psnr:.2f} dB on {len(held)} images")
    _json(result)


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""
    app.command("train")(train_cmd)
    nouns["generate"].command("reconstruct")(reconstruct_cmd)
    nouns["generate"].command("denoise")(denoise_cmd)
    nouns["models"].command("evaluate")(evaluate_cmd)
